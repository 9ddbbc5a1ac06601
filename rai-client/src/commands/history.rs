//! `rai history [-n N]`: the user's jobs, newest first, from the stored job records.

use crate::cli::GlobalArgs;
use crate::context::{self, Services};
use crate::exit;

pub async fn run(global: &GlobalArgs, n: usize, json: bool) -> anyhow::Result<u8> {
    let config = context::load_config(global)?;
    let profile = context::load_profile(global, Some(&config))?;
    let services = Services::connect(config, &profile.username, &[]).await?;
    let mut records = services
        .store
        .list(&format!("records/{}/", profile.username))
        .await?;
    // Job ids sort by time: newest first.
    records.sort_by(|a, b| b.key.cmp(&a.key));
    records.truncate(n);
    if !json {
        println!(
            "{:<27} {:<10} {:>5}  {:<25} IMAGE",
            "JOB", "STATUS", "EXIT", "FINISHED"
        );
    }
    for r in records {
        let bytes = services.store.get_bytes(&r.key).await?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if json {
            println!("{v}");
            continue;
        }
        println!(
            "{:<27} {:<10} {:>5}  {:<25} {}",
            v["id"].as_str().unwrap_or("?"),
            v["status"].as_str().unwrap_or("?"),
            v["exit_code"]
                .as_i64()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            v["finished_at"]
                .as_str()
                .unwrap_or("?")
                .chars()
                .take(25)
                .collect::<String>(),
            v["image"].as_str().unwrap_or("?"),
        );
    }
    Ok(exit::OK)
}
