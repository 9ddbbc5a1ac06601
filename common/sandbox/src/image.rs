//! The job's image: used when the engine has it, pulled when it is missing.
//!
//! A pull's progress comes back as lines for the student (one every two seconds at most); whoever runs the job
//! says them: the worker publishes them as the job's `✱` lines, `rai run --local` prints them. The sandbox itself
//! talks only to Docker.

use std::time::{Duration, Instant};

use bollard::Docker;
use futures::{Stream, StreamExt};

use crate::error::SandboxError;

/// How often a pull reports its progress.
const REPORT_EVERY: Duration = Duration::from_secs(2);

/// Whether the engine has `image`.
pub async fn has_image(docker: &Docker, image: &str) -> bool {
    docker.inspect_image(image).await.is_ok()
}

/// Pulls `image`, yielding a line of progress now and then; the pull is done when the stream ends without an error.
pub fn pull<'a>(
    docker: &'a Docker,
    image: &'a str,
) -> impl Stream<Item = Result<String, SandboxError>> + Send + 'a {
    let options = bollard::query_parameters::CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut last_report = Instant::now();
    docker
        .create_image(Some(options), None, None)
        .filter_map(move |step| {
            let line = match step {
                Err(source) => Some(Err(SandboxError::Pull {
                    image: image.to_string(),
                    source,
                })),
                Ok(info) => match info.status {
                    Some(status) if last_report.elapsed() > REPORT_EVERY => {
                        last_report = Instant::now();
                        Some(Ok(format!("{image}: {status}")))
                    }
                    _ => None,
                },
            };
            futures::future::ready(line)
        })
}

/// Makes sure the engine has `image`: nothing when it does; else "Pulling image IMAGE" and the pull's progress, as
/// lines for whoever runs the job to say. The image is there when the stream ends without an error.
pub fn ensure<'a>(
    docker: &'a Docker,
    image: &'a str,
) -> impl Stream<Item = Result<String, SandboxError>> + Send + 'a {
    futures::stream::once(has_image(docker, image)).flat_map(move |present| {
        if present {
            futures::stream::empty().left_stream()
        } else {
            futures::stream::once(futures::future::ready(Ok(format!("Pulling image {image}"))))
                .chain(pull(docker, image))
                .right_stream()
        }
    })
}
