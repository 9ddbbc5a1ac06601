//! A course's certificates for tests: a CA made here (rcgen), and certificates it signs for the services a course
//! serves over TLS (the gateway, Redis). `rai` is given the CA as `client.ca_file`, as a course gives its students;
//! the browser is told to accept it.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A test CA whose certificate is written to `ca.crt` in a folder.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM), for `client.ca_file`, `events.ca_file` and reqwest.
    pub cert: PathBuf,
}

/// A certificate and its key, as PEM files.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA, its certificate written into `dir`.
    pub fn new(dir: &Path) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: OpenSSL (Redis) takes a certificate whose subject is its issuer's for self-signed, and
        // rcgen gives every certificate the same default name.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "rai test course CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let cert = dir.join("course-ca.crt");
        std::fs::write(&cert, issuer.pem()).unwrap();
        TestCa { issuer, cert }
    }

    /// A certificate for `names` (DNS names or IP addresses), written as `NAME.crt` and `NAME.key.pem` in `dir`.
    pub fn issue(&self, dir: &Path, name: &str, names: &[&str]) -> Issued {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let issued = Issued {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key.pem")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }

    /// An HTTP client that trusts this CA (and no other), for tests that speak to a gateway directly.
    pub fn http(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.cert).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .build()
            .unwrap()
    }
}
