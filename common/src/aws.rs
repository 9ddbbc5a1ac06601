//! AWS clients (S3, SQS, STS) from rai's configuration.
//!
//! The same code talks to AWS and to a stand-in such as moto: `aws.endpoint_url` redirects every client, and
//! S3 then uses path-style addressing. Credentials come from the config when it has them (possibly encrypted),
//! otherwise from the standard AWS chain (environment, profile, instance role).

use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::Credentials;
use aws_types::SdkConfig;

use crate::config::AwsConfig;

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

/// The full text of an SDK error (the plain `Display` says only "service error").
pub fn error_text<E: std::error::Error>(e: &E) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
