//! `rai whoami`: what the profile says, so a student can check they hold the right one.

use crate::cli::GlobalArgs;
use crate::context;

pub fn run(global: &GlobalArgs) -> anyhow::Result<u8> {
    let config = context::load_config(global)?;
    let path = context::profile_path(global, Some(&config));
    let p = context::load_profile(global, Some(&config))?;
    let name = format!("{} {}", p.firstname, p.lastname);
    println!("username: {}", p.username);
    if !name.trim().is_empty() {
        println!("name:     {}", name.trim());
    }
    println!("email:    {}", p.email);
    println!("team:     {}", p.team.name);
    println!("role:     {}", p.role);
    println!("profile:  {}", path.display());
    Ok(crate::exit::OK)
}
