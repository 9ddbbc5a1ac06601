//! AWS clients (S3, SQS) from rai's configuration, for gateways and workers (students never hold AWS credentials).
//!
//! The same code talks to AWS and to a stand-in such as moto: `aws.endpoint_url` redirects every client, and
//! S3 then uses path-style addressing. Credentials come from the config when it has them (possibly encrypted),
//! otherwise from the standard AWS chain (environment, profile, instance role). What a failure means is read once,
//! here, from the SDK's error types ([`AwsFailure`]).

use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::Credentials;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_types::SdkConfig;

use rai_common::config::AwsConfig;

/// The SDK configuration for `aws`.
pub async fn sdk_config(aws: &AwsConfig) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(aws.region.clone()));
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let (Some(id), Some(secret)) = (&aws.access_key_id, &aws.secret_access_key) {
        loader =
            loader.credentials_provider(Credentials::new(id, secret, None, None, "rai-config"));
    }
    loader.load().await
}

/// An S3 client; path-style when talking to a custom endpoint.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// An SQS client.
pub fn sqs_client(sdk: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(sdk)
}

/// Where a client goes, for messages: the custom endpoint, or the service in the region.
pub fn endpoint_name(sdk: &SdkConfig, service: &str) -> String {
    match sdk.endpoint_url() {
        Some(url) => url.to_string(),
        None => format!(
            "{service} in {}",
            sdk.region()
                .map_or("the default region".to_string(), |r| r.to_string())
        ),
    }
}

/// What a failed AWS call means, read once from the SDK's error types: the kind of failure (`SdkError`'s variants),
/// the HTTP status of the service's answer and its error code (`ProvideErrorMetadata::code`). Never from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsFailure {
    /// No answer: the connection failed, or the call timed out.
    Unreachable,
    /// The service refused the credentials or their policy (HTTP 403, `AccessDenied`, ...).
    Denied,
    /// The thing asked for does not exist (HTTP 404, a `NoSuch...` or `...NotFound` code).
    NotFound,
    /// Any other answer or failure.
    Other,
}

impl AwsFailure {
    /// Classifies an SDK error.
    pub fn of<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> AwsFailure {
        match e {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => AwsFailure::Unreachable,
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = service.err().code().unwrap_or_default();
                if status == 403
                    || matches!(
                        code,
                        "AccessDenied"
                            | "InvalidAccessKeyId"
                            | "SignatureDoesNotMatch"
                            | "InvalidClientTokenId"
                    )
                {
                    AwsFailure::Denied
                } else if status == 404 || code.starts_with("NoSuch") || code.ends_with("NotFound")
                {
                    AwsFailure::NotFound
                } else {
                    AwsFailure::Other
                }
            }
            _ => AwsFailure::Other,
        }
    }
}

/// The error code the service answered with, if it answered (`NoSuchBucket`, `QueueDoesNotExist`, ...).
pub fn error_code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<&str> {
    e.as_service_error().and_then(|s| s.code())
}
