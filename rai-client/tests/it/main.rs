//! The `rai` binary's integration tests: whole systems of `raid` and `rai` processes on both stacks.
//!
//! One test binary per crate (each module was its own binary before): the crate and its dependencies link once.

/// Each named `async fn(Kind)` test, once on the local stack and once on the AWS stack.
macro_rules! on_both_stacks {
    ($($test:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Kind::Local).await })*
        }
        mod aws {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Kind::Aws).await })*
        }
    };
}

/// Student `user`'s client library, configured as their `rai` is (every gateway, the course's CA).
fn client_of(stack: &rai_testkit::stack::Stack, user: usize) -> rai_client::Client {
    let (config, name, key) = stack.student(user);
    rai_client::Client::new(&config, &name, key).unwrap()
}

mod chaos;
mod chunked;
mod dashboard;
mod datasets;
mod e2e;
mod errors;
mod gpus;
mod grading;
mod hostile;
mod hosts_apart;
mod identity;
mod kill_points;
mod local;
mod offline_commands;
mod operability;
mod sweeps;
