//! What can go wrong in pwctl, worded for the person at the terminal, and the exit code each
//! failure maps to (documented in `pwctl --help` and the man page).

use podwrangler::api::Problem;

/// Exit codes besides the remote exit code that `exec run` passes through.
pub mod exit {
    pub const OK: i32 = 0;
    /// A pod failed, or the daemon refused the request.
    pub const FAILURE: i32 = 1;
    /// The command line was wrong.
    pub const USAGE: i32 = 2;
    /// EX_DATAERR: bad input (validation errors, unreadable files, bad values).
    pub const BAD_INPUT: i32 = 65;
    /// EX_UNAVAILABLE: no daemon answers.
    pub const UNAVAILABLE: i32 = 69;
    /// EX_NOPERM: the daemon wants an API key (or a different one).
    pub const NO_PERMISSION: i32 = 77;
    /// EX_CONFIG: a config file cannot be read or parsed.
    pub const CONFIG: i32 = 78;
    /// Like timeout(1): the command ran past its timeout.
    pub const TIMEOUT: i32 = 124;
    /// Like a shell: Ctrl-C cancelled the command.
    pub const CANCELLED: i32 = 130;
}

/// The documented exit codes, in the order help text and the man page list them.
pub const EXIT_CODES: &[(i32, &str)] = &[
    (exit::OK, "success"),
    (
        exit::FAILURE,
        "failure: a pod's command failed (exec run-many), or the daemon refused the request",
    ),
    (exit::USAGE, "usage error on the command line"),
    (
        exit::BAD_INPUT,
        "bad input: the daemon rejected a field, or a file or value could not be used",
    ),
    (
        exit::UNAVAILABLE,
        "no daemon answers at the socket or URL (try --local)",
    ),
    (exit::NO_PERMISSION, "the daemon wants a valid API key"),
    (exit::CONFIG, "a config file cannot be read or parsed"),
    (exit::TIMEOUT, "the command timed out in the pod"),
    (
        exit::CANCELLED,
        "Ctrl-C cancelled the command in the pod (its shell is kept)",
    ),
    (
        crate::fanout::CONNECTION_FAILURE,
        "exec run-many: a pod's command could not run or lost its connection (otherwise run-many exits with the largest exit code of its pods)",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("no daemon at {target} (is podwranglerd running? try --local)")]
    Unreachable { target: String },

    #[error("{0}")]
    Usage(String),

    #[error("{0}")]
    BadInput(String),

    #[error("{0}")]
    Config(String),

    /// The daemon answered with a Problem body.
    #[error("{}", problem_message(.0))]
    Api(Box<Problem>),

    /// The daemon answered with something that is not the API's JSON.
    #[error("the daemon answered {status} with an unexpected body: {snippet}")]
    Protocol { status: u16, snippet: String },

    #[error("talking to the daemon at {target} failed: {message}")]
    Transport { target: String, message: String },

    #[error("could not start podwranglerd: {0}")]
    Spawn(String),

    /// Already reported to the user; just leave with this code.
    #[error("")]
    Exit(i32),
}

fn problem_message(p: &Problem) -> String {
    let mut msg = if p.detail.is_empty() {
        p.title.clone()
    } else {
        p.detail.clone()
    };
    match p.code.as_str() {
        "unauthorized" => msg.push_str(" (pass --api-key or set PODWRANGLER_API_KEY)"),
        "pod_busy" => msg.push_str(" (the pod's queue is full; try again shortly)"),
        _ => {}
    }
    msg
}

impl CtlError {
    /// A "no pod named X" error, worded the same whichever command hit it.
    pub fn no_pod(alias: &str) -> CtlError {
        CtlError::Api(Box::new(Problem {
            kind: "about:blank".into(),
            title: "Pod not found".into(),
            status: 404,
            detail: format!("no pod named {alias} (pwctl pod list shows the aliases)"),
            code: "pod_not_found".into(),
            field: None,
            record: None,
        }))
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::Unreachable { .. } => exit::UNAVAILABLE,
            CtlError::Usage(_) => exit::USAGE,
            CtlError::BadInput(_) => exit::BAD_INPUT,
            CtlError::Config(_) => exit::CONFIG,
            CtlError::Api(p) => match p.code.as_str() {
                "validation" | "payload_too_large" => exit::BAD_INPUT,
                "unauthorized" => exit::NO_PERMISSION,
                "command_timeout" => exit::TIMEOUT,
                _ => exit::FAILURE,
            },
            CtlError::Protocol { .. } | CtlError::Transport { .. } => exit::FAILURE,
            CtlError::Spawn(_) => exit::UNAVAILABLE,
            CtlError::Exit(code) => *code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(code: &str, detail: &str) -> CtlError {
        CtlError::Api(Box::new(Problem {
            kind: "about:blank".into(),
            title: "T".into(),
            status: 400,
            detail: detail.into(),
            code: code.into(),
            field: None,
            record: None,
        }))
    }

    #[test]
    fn problems_read_by_their_detail_and_map_to_exit_codes() {
        let e = problem("validation", "alias: must not be empty");
        assert_eq!(e.to_string(), "alias: must not be empty");
        assert_eq!(e.exit_code(), exit::BAD_INPUT);
        assert_eq!(
            problem("unauthorized", "x").exit_code(),
            exit::NO_PERMISSION
        );
        assert!(
            problem("unauthorized", "x")
                .to_string()
                .contains("--api-key")
        );
        assert_eq!(problem("command_timeout", "x").exit_code(), exit::TIMEOUT);
        assert_eq!(problem("pod_exists", "x").exit_code(), exit::FAILURE);
    }

    #[test]
    fn unreachable_names_the_socket_and_the_way_out() {
        let e = CtlError::Unreachable {
            target: "/run/podwrangler/podwranglerd.sock".into(),
        };
        assert_eq!(
            e.to_string(),
            "no daemon at /run/podwrangler/podwranglerd.sock (is podwranglerd running? try --local)"
        );
        assert_eq!(e.exit_code(), 69);
        assert_eq!(
            CtlError::no_pod("web-9").to_string(),
            "no pod named web-9 (pwctl pod list shows the aliases)"
        );
    }
}
