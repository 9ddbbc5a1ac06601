//! `rai-keygen`: how an instructor issues, imports, revokes and lists rai accounts.
//!
//! An account is an Ed25519 key pair: the private half goes into the student's profile (`~/.rai_profile`), the
//! public half into the account registry that every worker reads. This crate holds the logic; the binary only parses
//! flags and prints.
//!
//! # Layout
//! - [`store`]: the registry file on disk: locked, written atomically, the previous version kept as a backup.
//! - [`issue`]: making one account (validation of username, email and role; the key pair; the profile).
//! - [`roster`]: bulk import of a roster CSV, all-or-nothing unless told to skip bad rows.
//! - [`mail`]: each student's profile mailed to them over SMTP, from a template the instructor can change.
//! - [`errors`]: what can go wrong, with line numbers for roster rows.

pub mod errors;
pub mod issue;
pub mod mail;
pub mod roster;
pub mod store;

pub use errors::KeygenError;
pub use issue::{NewAccount, issue_account, revoke};
pub use roster::{ImportOptions, ImportReport, import_roster};
pub use store::{RegistryStore, write_gateway_key, write_profile};
