//! AWS clients (S3, SQS, STS) from rai's configuration.
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

pub use crate::errors::StsError;

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

/// The session policy for a student's temporary credentials: write their own upload prefix, read their own
/// outputs and records, and put messages on the job queues. STS intersects it with the role's own policy, so it can
/// only narrow what the role allows.
pub fn student_session_policy(bucket: &str, user: &str, queue_arns: &[String]) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "UploadOwnProject",
                "Effect": "Allow",
                // DeleteObject: a submit that fails after uploading removes its own upload.
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:DeleteObject"],
                "Resource": format!("arn:aws:s3:::{bucket}/uploads/{user}/*"),
            },
            {
                "Sid": "ReadOwnResults",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [
                    format!("arn:aws:s3:::{bucket}/outputs/{user}/*"),
                    format!("arn:aws:s3:::{bucket}/records/{user}/*"),
                ],
            },
            {
                "Sid": "ListOwnRecords",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": format!("arn:aws:s3:::{bucket}"),
                "Condition": {"StringLike": {"s3:prefix": [format!("records/{user}/*")]}},
            },
            {
                "Sid": "SubmitJobs",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage", "sqs:GetQueueUrl"],
                "Resource": queue_arns,
            },
        ],
    })
    .to_string()
}

/// The ARN of the SQS queue behind the logical queue `queue` (its FIFO queue, see
/// [`crate::queue::sqs_queue_name`]), from the account of the role ARN (`arn:aws:iam::<account>:role/...`).
pub fn queue_arn(region: &str, role_arn: &str, queue: &str) -> Option<String> {
    let account = role_arn.split(':').nth(4).filter(|a| !a.is_empty())?;
    let name = crate::queue::sqs_queue_name(queue);
    Some(format!("arn:aws:sqs:{region}:{account}:{name}"))
}

/// Temporary credentials, and an SDK configuration that uses them.
pub struct StudentSession {
    pub sdk: SdkConfig,
    pub expires: Option<std::time::SystemTime>,
}

/// Trades the configured base credentials for short-lived ones limited to `user`'s prefix and the job queues
/// (AssumeRole with the username as session name and [`student_session_policy`]). Without `aws.role_arn`, the base
/// credentials are used as they are.
pub async fn student_session(
    aws: &AwsConfig,
    user: &str,
    bucket: &str,
    queues: &[String],
) -> Result<StudentSession, StsError> {
    let base = sdk_config(aws).await;
    let Some(role) = &aws.role_arn else {
        return Ok(StudentSession {
            sdk: base,
            expires: None,
        });
    };
    let arns: Vec<String> = queues
        .iter()
        .filter_map(|q| queue_arn(&aws.region, role, q))
        .collect();
    let sts = aws_sdk_sts::Client::new(&base);
    let out = sts
        .assume_role()
        .role_arn(role)
        .role_session_name(user)
        .policy(student_session_policy(bucket, user, &arns))
        .duration_seconds(
            aws.session_duration
                .as_duration()
                .as_secs()
                .clamp(900, 43_200) as i32,
        )
        .send()
        .await
        .map_err(|e| StsError {
            endpoint: endpoint_name(&base, "sts"),
            role: role.clone(),
            source: e.into(),
        })?;
    let c = out.credentials().ok_or_else(|| StsError {
        endpoint: endpoint_name(&base, "sts"),
        role: role.clone(),
        source: "AssumeRole returned no credentials".into(),
    })?;
    let expires = std::time::SystemTime::try_from(*c.expiration()).ok();
    let creds = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        expires,
        "rai-sts",
    );
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(aws.region.clone()))
        .credentials_provider(creds);
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    Ok(StudentSession {
        sdk: loader.load().await,
        expires,
    })
}
