//! The network of jobs a queue's policy lets use one: a Docker bridge network of their own, behind firewall rules.
//!
//! A job with `network: true` must reach the internet (a package mirror, a dataset), but never the cloud metadata
//! service (169.254.169.254, which hands out the machine's credentials), nor the course's own services: Redis, the
//! gateway, anything listening on the worker's host. Docker's default bridge allows all of those. So such jobs join
//! a bridge network raid makes (IPv4 only, so `fd00:ec2::254` and every IPv6 address are unreachable; containers
//! on it cannot talk to each other), and raid installs, at start, two kinds of rule keyed on its host interface:
//!
//! - `INPUT -i <bridge> -j DROP`: nothing from a job reaches the host itself, whatever address it uses (the
//!   bridge's gateway, docker0's, the host's own); Redis or a gateway on the worker is out of reach.
//! - `DOCKER-USER -i <bridge> -d <cidr> -j DROP` for each `raid.job_network.deny` entry: by default link-local (the
//!   metadata service), the private ranges (where a course's Redis, gateways and campus services live) and the
//!   clouds' shared address space;
//! - before those, `DOCKER-USER -i <bridge> -d <cidr> -j RETURN` for each `raid.job_network.allow` entry: what an
//!   admin opens inside them (a package mirror), which Docker's own rules then handle as any other traffic.
//!
//! Image builds allowed the network (`raid.build_images.network`) run their `RUN` steps on this network too, so a
//! Dockerfile reaches no more than a job does (issue 26: they ran on Docker's default bridge).
//!
//! The rules are checked (`iptables -C`) before being inserted, so a restart adds nothing twice; when one of the
//! `DOCKER-USER` rules is missing, all of them are put back in order (an allow must come before the denies). A
//! worker that allows the network but cannot install them refuses to start, rather than run jobs on an open
//! network.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use bollard::Docker;
use bollard::models::NetworkCreateRequest;
use rai_common::config::JobNetworkConfig;

/// Why the job network cannot be made safe.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(
        "raid.job_network.bridge {0:?} is not an interface name (1 to 15 letters, digits, - or _)"
    )]
    BridgeName(String),
    #[error(
        "raid.job_network (deny or allow): {0:?} is not an IPv4 address or CIDR (the job network is IPv4 only, so IPv6 is out of reach already)"
    )]
    Cidr(String),
    #[error("cannot make the job network {name}: {source}")]
    Docker {
        name: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(
        "cannot install the job network's firewall rule `iptables {rule}`: {why}; raid needs CAP_NET_ADMIN for it (or set raid.limits.network: false)"
    )]
    Firewall {
        rule: String,
        #[source]
        why: IptablesError,
    },
}

/// Why one `iptables` call did not do its work.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("cannot run iptables: {0}")]
    Run(#[source] std::io::Error),
    /// It ran and refused, in its words.
    #[error("{0}")]
    Refused(String),
}

/// One firewall rule: its chain and its match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: &'static str,
    pub args: Vec<String>,
}

impl Rule {
    fn text(&self, verb: &str) -> String {
        format!("{verb} {} {}", self.chain, self.args.join(" "))
    }
}

/// The job network as configured.
#[derive(Debug, Clone)]
pub struct JobNetwork {
    pub name: String,
    pub bridge: String,
    deny: Vec<String>,
    allow: Vec<String>,
}

impl JobNetwork {
    /// Checks the configuration (interface name, CIDRs).
    pub fn new(config: &JobNetworkConfig) -> Result<JobNetwork, NetworkError> {
        let bridge = &config.bridge;
        if bridge.is_empty()
            || bridge.len() > 15
            || !bridge
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(NetworkError::BridgeName(bridge.clone()));
        }
        for cidr in config.deny.iter().chain(&config.allow) {
            let (addr, bits) = cidr.split_once('/').unwrap_or((cidr, "32"));
            let ok = addr.parse::<Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32);
            if !ok {
                return Err(NetworkError::Cidr(cidr.clone()));
            }
        }
        Ok(JobNetwork {
            name: config.name.clone(),
            bridge: bridge.clone(),
            deny: config.deny.clone(),
            allow: config.allow.clone(),
        })
    }

    /// The firewall rules, in the order they are checked.
    pub fn rules(&self) -> Vec<Rule> {
        let from_jobs = |rest: &[&str]| {
            let mut args = vec!["-i".to_string(), self.bridge.clone()];
            args.extend(rest.iter().map(|s| s.to_string()));
            args
        };
        let mut rules = vec![Rule {
            chain: "INPUT",
            args: from_jobs(&["-j", "DROP"]),
        }];
        for cidr in &self.allow {
            rules.push(Rule {
                chain: "DOCKER-USER",
                args: from_jobs(&["-d", cidr, "-j", "RETURN"]),
            });
        }
        for cidr in &self.deny {
            rules.push(Rule {
                chain: "DOCKER-USER",
                args: from_jobs(&["-d", cidr, "-j", "DROP"]),
            });
        }
        rules
    }

    /// What Docker is asked for: a bridge on [`JobNetwork::bridge`], IPv4 only, no traffic between its containers.
    pub fn create_request(&self) -> NetworkCreateRequest {
        NetworkCreateRequest {
            name: self.name.clone(),
            driver: Some("bridge".into()),
            internal: Some(false),
            enable_ipv6: Some(false),
            options: Some(HashMap::from([
                (
                    "com.docker.network.bridge.name".to_string(),
                    self.bridge.clone(),
                ),
                (
                    "com.docker.network.bridge.enable_icc".to_string(),
                    "false".to_string(),
                ),
            ])),
            labels: Some(HashMap::from([(
                "rai.job-network".to_string(),
                "1".to_string(),
            )])),
            ..Default::default()
        }
    }

    /// Makes the network if it is missing and installs any missing rule.
    pub async fn ensure(&self, docker: &Docker) -> Result<(), NetworkError> {
        if docker.inspect_network(&self.name, None).await.is_err() {
            match docker.create_network(self.create_request()).await {
                Ok(_) => {
                    tracing::info!(network = %self.name, bridge = %self.bridge, "made the job network")
                }
                // Another worker on this engine made it meanwhile.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409, ..
                }) => {}
                Err(source) => {
                    return Err(NetworkError::Docker {
                        name: self.name.clone(),
                        source,
                    });
                }
            }
        }
        let rules = self.rules();
        let (input, forward): (Vec<Rule>, Vec<Rule>) =
            rules.into_iter().partition(|r| r.chain == "INPUT");
        for rule in &input {
            if iptables(rule, "-C").is_err() {
                insert_at_top(rule)?;
            }
        }
        if forward.iter().any(|r| iptables(r, "-C").is_err()) {
            // Put them all back in order: each goes on top, so the last one inserted (the first rule) is checked
            // first.
            for rule in &forward {
                while iptables(rule, "-C").is_ok() {
                    iptables(rule, "-D").map_err(|why| NetworkError::Firewall {
                        rule: rule.text("-D"),
                        why,
                    })?;
                }
            }
            for rule in forward.iter().rev() {
                insert_at_top(rule)?;
            }
        }
        Ok(())
    }

    /// The rules that are missing now, for `raid doctor`.
    pub fn missing_rules(&self) -> Vec<String> {
        self.rules()
            .into_iter()
            .filter(|r| iptables(r, "-C").is_err())
            .map(|r| r.text("-A"))
            .collect()
    }
}

/// Inserts `rule` as the first of its chain.
fn insert_at_top(rule: &Rule) -> Result<(), NetworkError> {
    let mut args = vec!["1".to_string()];
    args.extend(rule.args.iter().cloned());
    let at_top = Rule {
        chain: rule.chain,
        args,
    };
    iptables(&at_top, "-I").map_err(|why| NetworkError::Firewall {
        rule: rule.text("-I"),
        why,
    })
}

/// Runs `iptables -w VERB CHAIN ARGS...`; `Err` is why it failed.
fn iptables(rule: &Rule, verb: &str) -> Result<(), IptablesError> {
    let out = std::process::Command::new("iptables")
        .arg("-w")
        .arg(verb)
        .arg(rule.chain)
        .args(&rule.args)
        .output()
        .map_err(IptablesError::Run)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(IptablesError::Refused(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bridge: &str, deny: &[&str]) -> JobNetworkConfig {
        JobNetworkConfig {
            name: "rai-jobs".into(),
            bridge: bridge.into(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            allow: Vec::new(),
        }
    }

    #[test]
    fn by_default_jobs_are_kept_off_link_local_and_private_ranges_and_an_allow_comes_first() {
        let mut c = rai_common::Config::defaults().raid.job_network;
        c.allow = vec!["10.1.2.3".into()];
        let n = JobNetwork::new(&c).unwrap();
        let rules: Vec<String> = n.rules().iter().map(|r| r.text("-A")).collect();
        assert_eq!(
            rules,
            [
                "-A INPUT -i rai-jobs0 -j DROP",
                "-A DOCKER-USER -i rai-jobs0 -d 10.1.2.3 -j RETURN",
                "-A DOCKER-USER -i rai-jobs0 -d 169.254.0.0/16 -j DROP",
                "-A DOCKER-USER -i rai-jobs0 -d 10.0.0.0/8 -j DROP",
                "-A DOCKER-USER -i rai-jobs0 -d 172.16.0.0/12 -j DROP",
                "-A DOCKER-USER -i rai-jobs0 -d 192.168.0.0/16 -j DROP",
                "-A DOCKER-USER -i rai-jobs0 -d 100.64.0.0/10 -j DROP",
            ]
        );
        c.allow = vec!["mirror.example.edu".into()];
        assert!(JobNetwork::new(&c).is_err());
    }

    #[test]
    fn the_rules_keep_jobs_off_the_host_the_metadata_service_and_the_course() {
        let n = JobNetwork::new(&config("rai-jobs0", &["169.254.0.0/16", "10.20.0.0/16"])).unwrap();
        let rules: Vec<String> = n.rules().iter().map(|r| r.text("-A")).collect();
        assert_eq!(
            rules,
            [
                "-A INPUT -i rai-jobs0 -j DROP",
                "-A DOCKER-USER -i rai-jobs0 -d 169.254.0.0/16 -j DROP",
                "-A DOCKER-USER -i rai-jobs0 -d 10.20.0.0/16 -j DROP",
            ]
        );
        let req = n.create_request();
        assert_eq!(
            req.enable_ipv6,
            Some(false),
            "IPv6 (fd00:ec2::254) is out of reach"
        );
        let options = req.options.unwrap();
        assert_eq!(options["com.docker.network.bridge.enable_icc"], "false");
        assert_eq!(options["com.docker.network.bridge.name"], "rai-jobs0");
    }

    #[test]
    fn a_bad_bridge_name_or_address_is_refused() {
        assert!(JobNetwork::new(&config("a-bridge-name-too-long", &[])).is_err());
        assert!(JobNetwork::new(&config("br0; rm", &[])).is_err());
        let e = JobNetwork::new(&config("rai0", &["fd00:ec2::254"])).unwrap_err();
        assert!(e.to_string().contains("IPv4 only"), "{e}");
        assert!(JobNetwork::new(&config("rai0", &["169.254.169.254"])).is_ok());
        assert!(JobNetwork::new(&config("rai0", &["10.0.0.0/33"])).is_err());
    }
}
