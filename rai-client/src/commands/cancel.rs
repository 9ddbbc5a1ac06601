//! `rai cancel ID...`: ask the workers to stop jobs (SIGTERM, then a kill after the grace period); a sweep's jobs
//! all at once.

use rai_common::JobId;

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;

pub async fn run(global: &GlobalArgs, ids: &[String]) -> anyhow::Result<u8> {
    let jobs = ids
        .iter()
        .map(|id| id.parse::<JobId>())
        .collect::<Result<Vec<_>, _>>()?;
    let session = context::session(global)?;
    let mut code = exit::OK;
    for job in jobs {
        match session.client.cancel(&job).await {
            Ok(()) => eprintln!(
                "✱ Asked the worker to cancel job {job}; `rai logs -f {job}` shows when it stops."
            ),
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
