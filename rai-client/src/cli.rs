//! The command line. `rai -p DIR` (the 2017 form) means `rai submit -p DIR`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "rai",
    version = rai_common::LONG_VERSION,
    about = "Run your project on the course's GPU workers",
    args_conflicts_with_subcommands = false
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The build file to use instead of the project's rai_build.yml (the 2017 client's `-f`; `rai submit -f` too).
    #[arg(short = 'f', long = "build", value_name = "FILE")]
    pub build: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// The project directory (holds rai_build.yml).
    #[arg(short = 'p', long = "path", global = true, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// The profile to use instead of ~/.rai_profile.
    #[arg(long, global = true, env = "RAI_PROFILE", value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// The app secret for encrypted configuration values (normally built in).
    #[arg(short = 's', long = "secret", global = true, hide = true)]
    pub secret: Option<String>,
    /// The queue to submit to (the 2017 client's `-q`; `rai submit --queue` is the same).
    #[arg(short = 'q', long = "queue", global = true, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Colour in job output (on by default; `-c=false` turns it off, as in the 2017 client; so does NO_COLOR).
    #[arg(
        short = 'c',
        long = "color",
        global = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub color: Option<bool>,
    /// Say more about what rai does (its log at info level, on stderr).
    #[arg(short = 'v', long = "verbose", global = true)]
    pub verbose: bool,
    /// Say everything rai does (its log at debug level, on stderr), for a bug report.
    #[arg(short = 'd', long = "debug", global = true)]
    pub debug: bool,
    /// Submit for grading, for this assignment (the 2017 class client's `--submit=m1`); `--assignment` too.
    #[arg(
        long = "submit",
        visible_alias = "assignment",
        global = true,
        value_name = "ASSIGNMENT"
    )]
    pub assignment: Option<String>,
    /// The 2017 client's switch for its own rate limiter; accepted, with a note that it has no effect (the gateway
    /// limits how often each student submits).
    #[arg(
        long = "ratelimit",
        global = true,
        hide = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub ratelimit: Option<bool>,
}

impl GlobalArgs {
    /// Whether job output keeps its colours: `-c=BOOL` if given, else off when NO_COLOR is set.
    pub fn color(&self) -> bool {
        self.color
            .unwrap_or_else(|| std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
    }

    /// The log level `-v` / `-d` ask for, if any.
    pub fn log_level(&self) -> Option<&'static str> {
        if self.debug {
            Some("debug")
        } else if self.verbose {
            Some("info")
        } else {
            None
        }
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<rai_common::units::Span>()
        .map(|d| d.as_duration())
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pack the project, upload it, queue the job and show its output as it runs (`rai -p DIR` does the same).
    Submit {
        /// Queue the job and return at once.
        #[arg(long)]
        detach: bool,
        /// One JSON event per line on stdout, for scripts.
        #[arg(long)]
        json: bool,
        /// Stop waiting after this long (90s, 10m); the job goes on.
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<std::time::Duration>,
        /// The build file to use instead of the project's rai_build.yml.
        #[arg(short = 'f', long = "build", value_name = "FILE")]
        build: Option<PathBuf>,
    },
    /// Run the project in this machine's Docker engine, in the sandbox the course's workers use (the same limits,
    /// lines and exit code), before spending a place in the queue; /build is left in a folder.
    Run {
        /// On this machine (the only place `rai run` runs; `rai submit` runs on the course's workers).
        #[arg(long, required = true)]
        local: bool,
        /// GPUs to give the job (default: as many as the build file asks for); needs the NVIDIA Container Toolkit.
        #[arg(long, value_name = "N")]
        gpus: Option<u32>,
        /// A local copy of a course dataset, mounted read-only at /data/NAME (repeat for more).
        #[arg(long = "dataset", value_name = "NAME=DIR")]
        datasets: Vec<String>,
        /// Where /build is left (default: ./build-<id>); it must be new or empty.
        #[arg(short = 'o', long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// The build file to use instead of the project's rai_build.yml.
        #[arg(short = 'f', long = "build", value_name = "FILE")]
        build: Option<PathBuf>,
        /// One JSON event per line on stdout, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Show a job's output from the start; `-f` keeps following it live.
    Logs {
        #[arg(short = 'f', long)]
        follow: bool,
        #[arg(long)]
        json: bool,
        id: String,
    },
    /// Show a job's status.
    Status {
        #[arg(long)]
        json: bool,
        id: String,
    },
    /// Show a job's scores (what its /build/results.json said), as much as you may see now; without a job id, your
    /// latest job that kept scores.
    Results {
        #[arg(long)]
        json: bool,
        id: Option<String>,
    },
    /// Ask the worker to stop a job, or several (a sweep's: `rai submit` prints the line to stop them all).
    Cancel {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// List your jobs, newest first (staff: anyone's, a team's, or everyone's).
    History {
        #[arg(short = 'n', default_value_t = 20)]
        n: usize,
        #[arg(long)]
        json: bool,
        /// Another user's jobs (a teammate's; staff: anyone's).
        #[arg(long, conflicts_with_all = ["team", "all"])]
        user: Option<String>,
        /// A team's jobs (your own team's; staff: any team's).
        #[arg(long, conflicts_with = "all")]
        team: Option<String>,
        /// Everyone's jobs (staff).
        #[arg(long)]
        all: bool,
    },
    /// Staff: an assignment's graded submissions, one row per team (the one that counts), for grading.
    Submissions {
        assignment: String,
        /// Comma-separated values with a header row, for a spreadsheet.
        #[arg(long)]
        csv: bool,
        /// Every submission, not only the one that counts.
        #[arg(long)]
        every: bool,
        /// Write a Canvas gradebook import (each student's team's counting score) from this roster: the course's
        /// gradebook exported from Canvas.
        #[arg(long, value_name = "ROSTER.CSV", conflicts_with_all = ["csv", "every"])]
        canvas: Option<PathBuf>,
    },
    /// Staff: an assignment's extensions (the course file's `extensions:`), whom each is for and the deadline it
    /// gives.
    Extensions {
        assignment: String,
        #[arg(long)]
        json: bool,
    },
    /// Jobs, GPU-hours, failures and queue waits (yours; staff: everyone's), from the workers' records.
    Usage {
        /// Group by user, team, assignment or day.
        #[arg(long, default_value = "user", value_parser = ["user", "team", "assignment", "day"])]
        by: String,
        /// Only jobs accepted on or after this day (2026-12-01, in the course's time zone).
        #[arg(long)]
        since: Option<String>,
        /// Comma-separated values with a header row.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        #[arg(long)]
        json: bool,
    },
    /// Staff: run each team's counting submission of an assignment again with the course file's build file of now
    /// (after fixing the grader), from the stored uploads; follows the batch and sums up what changed.
    Regrade {
        assignment: String,
        /// Only this team's (repeat for more).
        #[arg(long = "team", value_name = "TEAM")]
        teams: Vec<String>,
        /// Every submission of each team, not only the one that counts.
        #[arg(long)]
        all_submissions: bool,
        /// Queue the batch and return without following it.
        #[arg(long)]
        detach: bool,
    },
    /// Staff: jobs the workers gave up on (taken again and again, never finished): list them, send one back to
    /// its queue, or end it as an error.
    Deadletters {
        /// Send this job back to its queue.
        #[arg(long, value_name = "JOB", conflicts_with = "drop")]
        requeue: Option<String>,
        /// End this job as an error (its owner is told who dropped it and why).
        #[arg(long, value_name = "JOB")]
        drop: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Download a job's /build folder.
    Download {
        id: String,
        /// Where to unpack it (default: ./build-<id>); it must be new or empty.
        #[arg(short = 'o', long)]
        output: Option<std::path::PathBuf>,
        /// Unpack into a folder that is not empty: what is there stays as it is (nothing is replaced, deleted or
        /// re-moded); entries whose paths are taken are left out and listed.
        #[arg(long)]
        force: bool,
    },
    /// Check a build file and say what it asks for.
    Validate {
        /// The build file (default: rai_build.yml in the project directory).
        file: Option<PathBuf>,
        /// Treat warnings (unknown, repeated or ignored keys) as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Write a commented rai_build.yml into the project directory.
    Init {
        /// Replace an existing rai_build.yml.
        #[arg(long)]
        force: bool,
    },
    /// List your team's graded submissions (of one assignment, or all), and which one counts.
    Submitted {
        /// The assignment (default: every one).
        assignment: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show an assignment's leaderboard: your team by name, the others anonymized.
    Ranking {
        assignment: String,
        /// How many rows.
        #[arg(short = 'n', long = "num-results", default_value_t = 10)]
        n: usize,
        #[arg(long)]
        json: bool,
    },
    /// Staff: open the staff dashboard in your browser with a one-time link signed by your key.
    Dashboard {
        /// Print the link instead of opening it.
        #[arg(long)]
        print: bool,
    },
    /// The datasets the course offers: resources.datasets: [NAME] mounts one read-only at /data/NAME.
    Datasets {
        #[arg(long)]
        json: bool,
    },
    /// Staff: each worker, its queues, slots, GPUs, running jobs and last heartbeat.
    Workers {
        #[arg(long)]
        json: bool,
    },
    /// Show who your profile says you are.
    Whoami,
    /// Print rai's version, and the date and commit it was built from.
    #[command(alias = "buildinfo")]
    Version,
    /// Print the date of the commit rai was built from (as the 2017 client did).
    Buildtime,
    /// Print every environment variable rai sees, NAME=value, one per line.
    Env,
    /// Print rai's licence (Apache-2.0).
    License,
    /// Print a shell completion script: `rai completions bash > ~/.local/share/bash-completion/completions/rai`.
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },
}
