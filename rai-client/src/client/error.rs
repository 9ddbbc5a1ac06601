//! What can go wrong talking to the gateway, each with what to do about it.

use std::path::PathBuf;

use rai_common::api::ErrorCode;
use reqwest::StatusCode;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    /// Reading the project to send its chunks failed.
    #[error("cannot read the project: {0}")]
    Project(#[source] rai_common::errors::ProjectError),
    #[error(
        "{sent} of the {missing} chunks the gateway asked for were found in the project: a file changed while it was being submitted; submit again"
    )]
    ProjectChanged { sent: usize, missing: usize },
    #[error(
        "no gateway is configured: set client.gateway in the course's config (~/.rai_config.yml), as your instructor says"
    )]
    NoGateway,
    #[error("the gateway address {url:?} is not a URL: {reason}")]
    BadGatewayUrl { url: String, reason: String },
    #[error(
        "refusing plain http to {0}: your signed requests would cross the network readable by anyone; use https://"
    )]
    PlainHttp(String),
    #[error("cannot read the CA certificate {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA certificate {path} is not PEM: {source}")]
    BadCa {
        path: PathBuf,
        source: reqwest::Error,
    },
    #[error("cannot set up HTTPS: {0}")]
    Tls(#[source] reqwest::Error),
    #[error(
        "cannot reach the gateway {url}: {source}; check your network, or try again in a minute"
    )]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The gateway answered with a refusal; `message` is written for the student.
    #[error("{message}")]
    Refused {
        status: StatusCode,
        code: ErrorCode,
        message: String,
    },
    #[error(
        "the gateway's answer was not understood ({0}); is client.gateway the course's gateway?"
    )]
    Protocol(String),
    #[error("the object store refused part {part} of the upload: {status}; submit again")]
    PartRefused { part: usize, status: StatusCode },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lost the connection to the gateway for {secs}s while following the job: {last}")]
    GaveUp { secs: u64, last: String },
}

impl ClientError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The code of a refusal (what kind it is, stable across releases; never read the message for it).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}
