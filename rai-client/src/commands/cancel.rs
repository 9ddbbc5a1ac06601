//! `rai cancel ID...`: ask the workers to stop jobs (SIGTERM, then a kill after the grace period); a sweep's id
//! stops every job of the sweep.

use rai_common::JobId;
use rai_common::api::ErrorCode;

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;

pub async fn run(global: &GlobalArgs, ids: &[String]) -> anyhow::Result<u8> {
    let jobs = ids
        .iter()
        .map(|id| id.parse::<JobId>())
        .collect::<Result<Vec<_>, _>>()?;
    let session = context::session(global)?;
    let client = &session.client;
    let mut code = exit::OK;
    for job in jobs {
        let asked = match client.cancel(&job).await {
            Ok(()) => Ok(format!(
                "✱ Asked the worker to cancel job {job}; `rai logs -f {job}` shows when it stops."
            )),
            // Not a job of yours: perhaps a sweep of yours.
            Err(e) if e.code() == Some(ErrorCode::NoSuchJob) => {
                match client.cancel_sweep(&job).await {
                    Ok(sweep) => Ok(format!(
                        "✱ Asked the workers to cancel the {} jobs of sweep {job}; `rai status {job}` shows them.",
                        sweep.jobs.len()
                    )),
                    Err(_) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match asked {
            Ok(line) => eprintln!("{line}"),
            // One job: its error is rai's error, as before; of several, each is said and the rest go on.
            Err(e) if ids.len() == 1 => return Err(e.into()),
            Err(e) => {
                eprintln!("rai: cannot cancel job {job}: {e}");
                code = exit::SOME_FAILED;
            }
        }
    }
    Ok(code)
}
