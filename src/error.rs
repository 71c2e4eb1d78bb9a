//! The library's error type and the one place that maps errors to process exit codes.

use crate::config::ConfigError;
use crate::forge::ForgeError;
use crate::manager::{Cause, Failure};

/// Process exit codes. They are part of the CLI contract and listed in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// The command did what was asked.
    Success = 0,
    /// The command ran and found a problem (for example a health check that could not fix
    /// everything, or a runner that refused to be deleted).
    Problem = 1,
    /// The command line or the configuration is wrong.
    Usage = 2,
    /// A dependency (Redis, GitHub, a backend) could not be reached.
    Unavailable = 3,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The exit codes as the help and the man pages document them.
pub const EXIT_CODES: &[(i32, &str)] = &[
    (0, "Success: the command did what was asked."),
    (1, "The command ran and found a problem (a health check that could not fix everything, a runner that refused to be deleted, a permanent backend error such as a bad image)."),
    (2, "Usage or configuration error (a bad argument, an invalid configuration, a secret missing, credentials the forge refuses)."),
    (3, "A dependency (Redis, the forge, a backend) could not be reached."),
];

/// Every error the library surfaces to the command line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("{0}")]
    Usage(String),

    /// The command ran and found a problem it reports to the operator.
    #[error("{0}")]
    Problem(String),

    /// A dependency could not be reached; the message names it.
    #[error("{0}")]
    Unavailable(String),

    #[error(transparent)]
    Store(#[from] crate::store::StoreError),

    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),

    #[error(transparent)]
    Forge(#[from] crate::forge::ForgeError),

    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),

    /// Several failures; the first decides the exit code.
    #[error("{}", all.join("; "))]
    Several { first: Box<Error>, all: Vec<String> },

    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),

    /// The container hook's failure; a step's own exit status is passed on as it is.
    #[error("container hook: {0}")]
    Hook(#[from] crate::hook::HookError),
}

/// An operation's failure, with its cause kept: a forge, backend or store error keeps its own
/// exit code; the configuration's is a usage error.
impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        let Some(cause) = f.cause() else {
            return Error::Problem(f.to_string());
        };
        match cause.clone() {
            Cause::Forge(e) => Error::Forge(e),
            Cause::Backend(e) => Error::Backend(e),
            Cause::Store(e) if e.is_unavailable() => Error::Unavailable(e.to_string()),
            Cause::Store(e) => Error::Problem(e.to_string()),
            Cause::Config(why) => Error::Usage(why),
            Cause::State(why) => Error::Problem(why),
        }
    }
}

impl Error {
    /// The exit code for this error. This match is the only mapping from errors to exit codes.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(_) | Error::Usage(_) => ExitCode::Usage,
            Error::Problem(_) | Error::Output(_) | Error::Hook(_) => ExitCode::Problem,
            Error::Unavailable(_) => ExitCode::Unavailable,
            Error::Several { first, .. } => first.exit_code(),
            Error::Backend(e) if e.is_transient() => ExitCode::Unavailable,
            Error::Backend(_) => ExitCode::Problem,
            Error::Store(e) if e.is_refused() => ExitCode::Usage,
            Error::Store(e) if e.is_unavailable() => ExitCode::Unavailable,
            Error::Queue(e) if e.is_unavailable() => ExitCode::Unavailable,
            Error::Queue(crate::queue::QueueError::NoSuchTask(_)) => ExitCode::Usage,
            Error::Store(_) | Error::Queue(_) => ExitCode::Problem,
            Error::Forge(e) => match e {
                ForgeError::Unavailable(_)
                | ForgeError::RateLimited { .. }
                | ForgeError::Deferred { .. } => ExitCode::Unavailable,
                ForgeError::Unauthorized(_) | ForgeError::Config(_) => ExitCode::Usage,
                _ => ExitCode::Problem,
            },
        }
    }
}

impl Error {
    /// One error for several outcomes that failed, summed up by `summary`: the first cause
    /// decides the exit code (an unreachable forge 3, refused credentials 2), a problem found
    /// (a busy runner) is 1 when nothing failed.
    pub fn summing(summary: String, causes: Vec<Error>) -> Error {
        match causes.into_iter().next() {
            Some(first) => Error::Several {
                first: Box::new(first),
                all: vec![summary],
            },
            None => Error::Problem(summary),
        }
    }

    /// The process's exit status: [`exit_code`](Self::exit_code), except that a container
    /// step's own status is the hook's (the runner shows it as the step's).
    pub fn status(&self) -> i32 {
        match self {
            Error::Hook(crate::hook::HookError::Step(code)) => *code,
            other => other.exit_code().code(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
