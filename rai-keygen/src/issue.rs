//! Making and revoking one account.

use chrono::{DateTime, Utc};
use rai_common::account::{
    Account, Profile, Registry, Role, Team, encode_public_key, generate_signing_key,
};

use crate::errors::{AccountInputError, KeygenError};

/// Who to make an account for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub username: String,
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub team: String,
    pub role: Role,
    pub affiliation: String,
}

/// Why a username cannot be used, if it cannot. Usernames name store prefixes (`uploads/<user>/`) and STS session
/// names, so they keep to letters, digits, `.`, `_` and `-`.
pub fn check_username(name: &str) -> Result<(), AccountInputError> {
    if name.is_empty() {
        return Err(AccountInputError::NoUsername);
    }
    if name.len() < 2 || name.len() > 64 {
        return Err(AccountInputError::UsernameLength(name.to_string()));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        || name.starts_with(['.', '-'])
    {
        return Err(AccountInputError::UsernameCharacters(name.to_string()));
    }
    Ok(())
}

/// Why an email address is not one, if it is not. Deliberately loose: it catches typos, not every RFC corner.
pub fn check_email(email: &str) -> Result<(), AccountInputError> {
    let bad = || Err(AccountInputError::Email(email.to_string()));
    if email.is_empty() {
        return Err(AccountInputError::NoEmail);
    }
    let Some((local, domain)) = email.split_once('@') else {
        return bad();
    };
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return bad();
    }
    Ok(())
}

impl NewAccount {
    pub fn check(&self) -> Result<(), AccountInputError> {
        check_username(&self.username)?;
        check_email(&self.email)
    }
}

/// Makes a key pair for `new`, records its public key in `registry`, and returns the profile.
/// An existing user keeps its key unless `rotate`; with `rotate`, its key is replaced and it is un-revoked.
pub fn issue_account(
    registry: &mut Registry,
    new: &NewAccount,
    rotate: bool,
    now: DateTime<Utc>,
) -> Result<Profile, KeygenError> {
    new.check()?;
    if registry.get(&new.username).is_some() && !rotate {
        return Err(KeygenError::Exists(new.username.clone()));
    }
    let key = generate_signing_key();
    let mut profile = Profile::new(&key, &new.username);
    profile.firstname = new.firstname.clone();
    profile.lastname = new.lastname.clone();
    profile.email = new.email.clone();
    profile.affiliation = new.affiliation.clone();
    profile.team = Team {
        name: new.team.clone(),
    };
    profile.role = new.role;
    let account = Account {
        username: new.username.clone(),
        email: new.email.clone(),
        team: new.team.clone(),
        role: new.role,
        public_key: encode_public_key(&key.verifying_key()),
        created: now,
        revoked: None,
    };
    match registry.get_mut(&new.username) {
        Some(existing) => *existing = account,
        None => registry.users.push(account),
    }
    Ok(profile)
}

/// Marks a user revoked: workers refuse its jobs from their next registry reload on. Revoking twice keeps the first
/// date.
pub fn revoke(
    registry: &mut Registry,
    username: &str,
    now: DateTime<Utc>,
) -> Result<(), KeygenError> {
    let acct = registry
        .get_mut(username)
        .ok_or_else(|| KeygenError::NoSuchUser(username.to_string()))?;
    acct.revoked.get_or_insert(now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_emails() {
        assert!(check_username("jdoe2").is_ok());
        assert!(check_username("j.doe_x-1").is_ok());
        assert!(check_username("a").is_err());
        assert!(check_username("../etc").is_err());
        assert!(check_username("has space").is_err());
        assert!(check_email("a@b.edu").is_ok());
        assert!(check_email("a@b").is_err());
        assert!(check_email("ab.edu").is_err());
        assert!(check_email("a b@c.edu").is_err());
    }
}
