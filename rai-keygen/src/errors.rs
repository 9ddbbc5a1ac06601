//! Errors of account management.

use std::path::PathBuf;

use thiserror::Error;

/// One bad roster row, with its line in the CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Debug, Error)]
pub enum KeygenError {
    #[error(transparent)]
    Account(#[from] rai_common::errors::AccountError),
    #[error("invalid account: {0}")]
    Invalid(#[from] AccountInputError),
    #[error(
        "user \"{0}\" already exists in the registry; pass --rotate to issue a new key (the old profile stops working)"
    )]
    Exists(String),
    #[error("no user \"{0}\" in the registry")]
    NoSuchUser(String),
    #[error(
        "{0} already exists; a gateway key is never replaced in place (workers trust it): write the new one elsewhere"
    )]
    KeyExists(PathBuf),
    #[error("{path}: the roster is not a CSV file this tool reads: {message}")]
    Csv { path: String, message: String },
    #[error("{path}: {} bad row(s); nothing was written (fix them, or pass --skip-invalid to import the rest):\n{}",
        .rows.len(), .rows.iter().map(|r| format!("  {r}")).collect::<Vec<_>>().join("\n"))]
    BadRows { path: String, rows: Vec<RowError> },
    #[error("{0}")]
    Mail(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A username or email that cannot make an account.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AccountInputError {
    #[error("the username is missing")]
    NoUsername,
    #[error("username \"{0}\" must be 2 to 64 characters long")]
    UsernameLength(String),
    #[error(
        "username \"{0}\" may hold only letters, digits, '.', '_' and '-', and must start with a letter or digit"
    )]
    UsernameCharacters(String),
    #[error("the email is missing")]
    NoEmail,
    #[error("invalid email \"{0}\"")]
    Email(String),
}
