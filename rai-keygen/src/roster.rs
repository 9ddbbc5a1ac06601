//! Bulk import of a course roster.
//!
//! The CSV has a header row naming its columns (any order, any case): `lastname, firstname, username, email, role,
//! affiliation` as in the 2017 tool, and optionally `team`. Every bad row is reported with its line number, and
//! nothing is written while any row is bad unless the instructor asks to skip them. Importing the same roster again
//! changes no existing key and duplicates no user, so an updated roster can simply be imported again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::Utc;
use rai_common::account::Role;

use crate::errors::{KeygenError, RowError};
use crate::issue::{NewAccount, issue_account};
use crate::store::{RegistryStore, write_profile};

const REQUIRED: &[&str] = &[
    "lastname",
    "firstname",
    "username",
    "email",
    "role",
    "affiliation",
];

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Where profiles are written, as `<username>.rai_profile`.
    pub out_dir: PathBuf,
    /// Issue new keys for users already in the registry.
    pub rotate: bool,
    /// Import the good rows even when some are bad.
    pub skip_invalid: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub created: Vec<String>,
    pub rotated: Vec<String>,
    /// Already in the registry; key and profile left alone.
    pub kept: Vec<String>,
    pub skipped: Vec<RowError>,
}

/// A roster split into usable rows (with their lines) and bad ones.
#[derive(Debug, Clone, Default)]
pub struct ParsedRoster {
    pub good: Vec<(u64, NewAccount)>,
    pub bad: Vec<RowError>,
}

// Long (about 100 lines) on purpose: one check per roster column, each with its own line-numbered message.
/// Reads a roster, returning the good rows and the bad ones.
pub fn parse_roster(text: &str, path: &str) -> Result<ParsedRoster, KeygenError> {
    let csv_err = |message: String| KeygenError::Csv {
        path: path.to_string(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| csv_err(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|c| !headers.iter().any(|h| h == c))
        .collect();
    if !missing.is_empty() {
        return Err(csv_err(format!(
            "the header row lacks column(s) {}; it needs {} (and optionally team)",
            missing.join(", "),
            REQUIRED.join(", ")
        )));
    }
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (i_last, i_first, i_user, i_email, i_role, i_aff) = (
        col("lastname").unwrap(),
        col("firstname").unwrap(),
        col("username").unwrap(),
        col("email").unwrap(),
        col("role").unwrap(),
        col("affiliation").unwrap(),
    );
    let i_team = col("team");

    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                bad.push(RowError {
                    line,
                    message: format!("not a CSV row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |i: usize| record.get(i).unwrap_or("").to_string();
        let mut problems = Vec::new();
        let username = field(i_user);
        let role = match field(i_role).as_str() {
            "" => Ok(Role::Student),
            r => r.parse::<Role>(),
        };
        let account = NewAccount {
            username: username.clone(),
            email: field(i_email),
            firstname: field(i_first),
            lastname: field(i_last),
            team: i_team.map(field).unwrap_or_default(),
            role: *role.as_ref().unwrap_or(&Role::Student),
            affiliation: field(i_aff),
        };
        if let Err(e) = crate::issue::check_username(&username) {
            problems.push(e.to_string());
        } else if let Some(first) = first_line.get(&username) {
            problems.push(format!(
                "duplicate username \"{username}\" (first on line {first})"
            ));
        } else {
            first_line.insert(username.clone(), line);
        }
        if let Err(e) = crate::issue::check_email(&account.email) {
            problems.push(e.to_string());
        }
        if let Err(e) = role {
            problems.push(e);
        }
        if problems.is_empty() {
            good.push((line, account));
        } else {
            bad.push(RowError {
                line,
                message: problems.join("; "),
            });
        }
    }
    Ok(ParsedRoster { good, bad })
}

/// Imports a roster file into the registry and writes a profile per new (or rotated) user.
pub fn import_roster(
    roster: &Path,
    store: &RegistryStore,
    opts: &ImportOptions,
) -> Result<ImportReport, KeygenError> {
    let text = std::fs::read_to_string(roster).map_err(|source| KeygenError::Io {
        action: "cannot read",
        path: roster.to_path_buf(),
        source,
    })?;
    let name = roster.display().to_string();
    let ParsedRoster { good, bad } = parse_roster(&text, &name)?;
    if !bad.is_empty() && !opts.skip_invalid {
        return Err(KeygenError::BadRows {
            path: name,
            rows: bad,
        });
    }
    let mut report = ImportReport {
        skipped: bad,
        ..Default::default()
    };
    let mut locked = store.lock()?;
    let now = Utc::now();
    // Profiles are written before the registry: a failure part-way leaves unused profiles, never a registered key
    // whose private half was lost.
    for (_, account) in &good {
        let exists = locked.registry.get(&account.username).is_some();
        if exists && !opts.rotate {
            report.kept.push(account.username.clone());
            continue;
        }
        let profile = issue_account(&mut locked.registry, account, opts.rotate, now)?;
        write_profile(
            &opts
                .out_dir
                .join(format!("{}.rai_profile", account.username)),
            &profile,
        )?;
        if exists {
            report.rotated.push(account.username.clone());
        } else {
            report.created.push(account.username.clone());
        }
    }
    locked.save()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let text = "lastname,firstname,username,email,role,affiliation\n\
                    Doe,Jane,jdoe,jdoe@uni.edu,student,Uni\n\
                    Roe,Rick,,rroe@uni.edu,student,Uni\n\
                    Poe,Pat,jdoe,ppoe@uni.edu,student,Uni\n\
                    Loe,Lou,lloe,not-an-email,student,Uni\n\
                    Moe,Max,mmoe,mmoe@uni.edu,professor,Uni\n\
                    Noe,Nia,nnoe,nnoe@uni.edu,TA,Uni\n";
        let ParsedRoster { good, bad } = parse_roster(text, "r.csv").unwrap();
        assert_eq!(
            good.iter()
                .map(|(_, a)| a.username.as_str())
                .collect::<Vec<_>>(),
            ["jdoe", "nnoe"]
        );
        assert_eq!(good[1].1.role, Role::Ta);
        let lines: Vec<u64> = bad.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5, 6]);
        assert!(bad[0].message.contains("username is missing"));
        assert!(
            bad[1]
                .message
                .contains("duplicate username \"jdoe\" (first on line 2)")
        );
        assert!(bad[2].message.contains("invalid email"));
        assert!(bad[3].message.contains("unknown role \"professor\""));
    }

    #[test]
    fn missing_columns_are_named() {
        let e = parse_roster("name,email\nx,y\n", "r.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lacks column(s) lastname, firstname, username, role, affiliation"),
            "{e}"
        );
    }
}
