//! The command line. These argh structs are the one table of commands: parsing, `--help`, the
//! man page and the shell completions all come from them (via `argh::ArgsInfo`).

use std::path::PathBuf;

use argh::{ArgsInfo, FromArgs};

/// PodWrangler's command-line client: register pods with podwranglerd and run shell commands in
/// them, one pod or many at once.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(
    note = "Global options may also follow the command (up to `--`).",
    note = "Which daemon: --api-url or --socket, else $PODWRANGLER_API_URL or\n\
            $PODWRANGLER_SOCKET, else api_url or socket in the user config dir's\n\
            podwrangler/pwctl.toml, else api_url in ~/.podwrangler.toml, else the\n\
            user-mode socket (runtime dir's podwrangler/podwranglerd.sock) when it\n\
            exists, else /run/podwrangler/podwranglerd.sock.",
    note = "--json prints the REST API's own JSON types: Health, [PodInfo], PodInfo,\n\
            ImportResponse, CommandRecord, FanOutResponse, CommandPage, AuditPage,\n\
            [ClusterInfo]; pod remove prints an object whose \"removed\" lists the\n\
            aliases.",
    note = "Kubernetes credentials: pwctl reads your kubeconfig itself (--kubeconfig,\n\
            --context, else as kubectl does: $KUBECONFIG, ~/.kube/config), runs its\n\
            token files and exec plugins as you, and sends the daemon the server, CA\n\
            and token or client certificate. --cluster NAME instead uses a cluster\n\
            the daemon's administrator configured (pwctl clusters lists them).",
    note = "exec run exits with the remote command's exit code, exec run-many with the\n\
            largest of its pods' codes; the codes below are pwctl's own (--json tells them\n\
            apart).",
    example = "{command_name} --local health",
    example = "{command_name} pod add --alias web-0 --url 'wss://host/exec/svc/?token=T&pod=web-0'",
    example = "{command_name} exec run web-0 -- ls -la /app",
    example = "{command_name} exec run-many 'df -h' --tag prod",
    error_code(0, "success"),
    error_code(
        1,
        "failure: a pod's command failed (exec run-many), or the daemon refused the request"
    ),
    error_code(2, "usage error on the command line"),
    error_code(
        65,
        "bad input: the daemon rejected a field, or a file or value could not be used"
    ),
    error_code(69, "no daemon answers at the socket or URL (try --local)"),
    error_code(77, "the daemon wants a valid API key"),
    error_code(78, "a config file cannot be read or parsed"),
    error_code(124, "the command timed out in the pod"),
    error_code(130, "Ctrl-C cancelled the command in the pod (its shell is kept)"),
    error_code(
        255,
        "exec run-many: a pod's command could not run or lost its connection (otherwise run-many exits with the largest exit code of its pods)"
    )
)]
pub struct Pwctl {
    /// daemon's Unix socket (env PODWRANGLER_SOCKET)
    #[argh(option, arg_name = "path")]
    pub socket: Option<PathBuf>,
    /// daemon's TCP URL, e.g. http://127.0.0.1:8000 (env PODWRANGLER_API_URL)
    #[argh(option, arg_name = "url")]
    pub api_url: Option<String>,
    /// API key sent as a bearer token over TCP (env PODWRANGLER_API_KEY)
    #[argh(option, arg_name = "key")]
    pub api_key: Option<String>,
    /// print the API's JSON instead of tables and text
    #[argh(switch)]
    pub json: bool,
    /// no colours (NO_COLOR and non-terminals turn them off too)
    #[argh(switch)]
    pub no_color: bool,
    /// start a user-mode podwranglerd in the background when none answers
    #[argh(switch, short = 'L')]
    pub local: bool,
    /// print pwctl's version
    #[argh(switch)]
    pub version: bool,
    #[argh(subcommand)]
    pub command: Option<Command>,
}

/// The global options, as `hoist_globals` needs them: (long, short, takes a value).
pub const GLOBAL_FLAGS: &[(&str, Option<char>, bool)] = &[
    ("--socket", None, true),
    ("--api-url", None, true),
    ("--api-key", None, true),
    ("--json", None, false),
    ("--no-color", None, false),
    ("--local", Some('L'), false),
];

// Parsed once per run; boxing the big variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand)]
pub enum Command {
    Health(HealthCmd),
    Pod(PodCmd),
    Exec(ExecCmd),
    Set(SetCmd),
    Audit(AuditCmd),
    Clusters(ClustersCmd),
    Cp(CpCmd),
    Completions(CompletionsCmd),
    Man(ManCmd),
}

/// Show whether the daemon is up: version, uptime, database and pod states.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "health")]
pub struct HealthCmd {}

/// Register, inspect, change and remove pods.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "pod")]
pub struct PodCmd {
    #[argh(subcommand)]
    pub command: PodCommand,
}

#[allow(clippy::large_enum_variant)]
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand)]
pub enum PodCommand {
    List(PodList),
    Show(PodShow),
    Add(PodAdd),
    Update(PodUpdateCmd),
    Remove(PodRemove),
    Import(PodImport),
}

/// List registered pods and their session state.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "list")]
pub struct PodList {
    /// only pods with this tag
    #[argh(option, arg_name = "tag")]
    pub tag: Option<String>,
    /// print only the aliases, one a line
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}

/// Show one pod.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "show")]
pub struct PodShow {
    /// the pod's alias
    #[argh(positional, arg_name = "alias")]
    pub alias: String,
}

/// Register a pod from a provider URL (PlainTTY web terminal or Kubernetes exec URL), or from
/// fields.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(
    subcommand,
    name = "add",
    example = "pwctl pod add --alias api-0 --provider kubernetes --pod-name api-7d9f-x2 --context prod",
    example = "pwctl pod add --alias api-0 --provider kubernetes --pod-name api-7d9f-x2 --cluster prod -n shop"
)]
pub struct PodAdd {
    /// unique name for the pod (letters, digits, '.', '_', '-')
    #[argh(option, arg_name = "alias")]
    pub alias: String,
    /// provider URL: wss://HOST/exec/SERVICE/?token=T&pod=POD or
    /// https://SERVER/api/v1/namespaces/NS/pods/POD/exec
    #[argh(option, arg_name = "url")]
    pub url: Option<String>,
    /// plaintty or kubernetes (default: guessed from --url, --cluster, --kubeconfig or
    /// --context, else plaintty)
    #[argh(option, arg_name = "provider")]
    pub provider: Option<String>,
    #[argh(option, arg_name = "token")]
    /// token (overrides one in --url); prefer --token-file, argv is visible to other users
    pub token: Option<String>,
    /// read the token from this file ('-' for stdin)
    #[argh(option, arg_name = "file")]
    pub token_file: Option<PathBuf>,
    /// pod name (when not in --url)
    #[argh(option, arg_name = "name")]
    pub pod_name: Option<String>,
    /// namespace (Kubernetes; default: the kubeconfig context's, else default)
    #[argh(option, short = 'n', arg_name = "namespace")]
    pub namespace: Option<String>,
    /// container in the pod
    #[argh(option, arg_name = "container")]
    pub container: Option<String>,
    /// service id of a PlainTTY URL (the /exec/SERVICE/ path segment)
    #[argh(option, arg_name = "id")]
    pub service_id: Option<String>,
    /// base URL: wss://host for PlainTTY, the API server for Kubernetes (with --token, no
    /// kubeconfig is read)
    #[argh(option, arg_name = "url")]
    pub server: Option<String>,
    /// a cluster the daemon's administrator configured (pwctl clusters); reads no kubeconfig
    #[argh(option, arg_name = "name")]
    pub cluster: Option<String>,
    /// kubeconfig that pwctl reads for the server and credentials (default: as kubectl
    /// finds it)
    #[argh(option, arg_name = "file")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context (default: the current one)
    #[argh(option, arg_name = "name")]
    pub context: Option<String>,
    /// PEM file of the CA certificates the API server's certificate must chain to
    #[argh(option, arg_name = "file")]
    pub certificate_authority: Option<PathBuf>,
    /// do not verify the server's TLS certificate
    #[argh(switch)]
    pub insecure_skip_tls_verify: bool,
    /// terminal width asked of PlainTTY endpoints
    #[argh(option, arg_name = "cols")]
    pub cols: Option<u16>,
    /// a tag for fan-out (repeat for more)
    #[argh(option, arg_name = "tag")]
    pub tag: Vec<String>,
}

/// Change a pod's connection details or tags; its session reconnects.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "update")]
pub struct PodUpdateCmd {
    /// the pod's alias
    #[argh(positional, arg_name = "alias")]
    pub alias: String,
    /// new provider URL
    #[argh(option, arg_name = "url")]
    pub url: Option<String>,
    /// plaintty or kubernetes
    #[argh(option, arg_name = "provider")]
    pub provider: Option<String>,
    /// new token; prefer --token-file
    #[argh(option, arg_name = "token")]
    pub token: Option<String>,
    /// read the new token from this file ('-' for stdin)
    #[argh(option, arg_name = "file")]
    pub token_file: Option<PathBuf>,
    /// pod name
    #[argh(option, arg_name = "name")]
    pub pod_name: Option<String>,
    /// namespace (Kubernetes)
    #[argh(option, arg_name = "namespace")]
    pub namespace: Option<String>,
    /// container in the pod
    #[argh(option, arg_name = "container")]
    pub container: Option<String>,
    /// service id of a PlainTTY URL
    #[argh(option, arg_name = "id")]
    pub service_id: Option<String>,
    /// base URL: wss://host for PlainTTY, the API server for Kubernetes
    #[argh(option, arg_name = "url")]
    pub server: Option<String>,
    /// switch to a cluster the daemon's administrator configured (pwctl clusters)
    #[argh(option, arg_name = "name")]
    pub cluster: Option<String>,
    /// switch to the server and credentials of this kubeconfig, read by pwctl
    #[argh(option, arg_name = "file")]
    pub kubeconfig: Option<PathBuf>,
    /// switch to this kubeconfig context's server and credentials
    #[argh(option, arg_name = "name")]
    pub context: Option<String>,
    /// PEM file of the CA certificates the API server's certificate must chain to
    #[argh(option, arg_name = "file")]
    pub certificate_authority: Option<PathBuf>,
    /// verify TLS (false) or not (true)
    #[argh(option, arg_name = "bool")]
    pub insecure_skip_tls_verify: Option<bool>,
    /// terminal width asked of PlainTTY endpoints
    #[argh(option, arg_name = "cols")]
    pub cols: Option<u16>,
    /// replace the tags with these (repeat for more)
    #[argh(option, arg_name = "tag")]
    pub tag: Vec<String>,
    /// remove every tag
    #[argh(switch)]
    pub clear_tags: bool,
}

/// Unregister pods and close their sessions.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "remove")]
pub struct PodRemove {
    /// the pods' aliases
    #[argh(positional, arg_name = "alias")]
    pub aliases: Vec<String>,
}

/// Register every pod a Kubernetes API lists (optionally by label selector).
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(
    subcommand,
    name = "import",
    example = "pwctl pod import --context staging -l app=web --prefix stg-",
    example = "pwctl pod import --cluster prod -n shop --tag prod"
)]
pub struct PodImport {
    /// namespace to list (default: the kubeconfig context's, else default)
    #[argh(option, short = 'n', arg_name = "namespace")]
    pub namespace: Option<String>,
    /// label selector, e.g. app=web
    #[argh(option, short = 'l', arg_name = "selector")]
    pub selector: Option<String>,
    /// a cluster the daemon's administrator configured (pwctl clusters); reads no kubeconfig
    #[argh(option, arg_name = "name")]
    pub cluster: Option<String>,
    /// kubeconfig that pwctl reads for the server and credentials (default: as kubectl
    /// finds it)
    #[argh(option, arg_name = "file")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context (default: the current one)
    #[argh(option, arg_name = "name")]
    pub context: Option<String>,
    /// API server URL; with --token no kubeconfig is read
    #[argh(option, arg_name = "url")]
    pub server: Option<String>,
    /// bearer token; prefer --token-file
    #[argh(option, arg_name = "token")]
    pub token: Option<String>,
    /// read the bearer token from this file ('-' for stdin)
    #[argh(option, arg_name = "file")]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA certificates the API server's certificate must chain to
    #[argh(option, arg_name = "file")]
    pub certificate_authority: Option<PathBuf>,
    /// do not verify the API server's TLS certificate
    #[argh(switch)]
    pub insecure_skip_tls_verify: bool,
    /// aliases become PREFIX + pod name
    #[argh(option, arg_name = "prefix")]
    pub prefix: Option<String>,
    /// tag every imported pod (repeat for more)
    #[argh(option, arg_name = "tag")]
    pub tag: Vec<String>,
}

/// Run commands in pods and look at what ran.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "exec")]
pub struct ExecCmd {
    #[argh(subcommand)]
    pub command: ExecCommand,
}

#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand)]
pub enum ExecCommand {
    Run(ExecRun),
    RunMany(ExecRunMany),
    History(ExecHistory),
    Show(ExecShow),
    Job(ExecJob),
    Jobs(ExecJobs),
}

/// Run a command in one pod: its output as it arrives, stdout to stdout and stderr to stderr,
/// and pwctl exits with its exit code (124 when it timed out; Ctrl-C cancels it in the pod,
/// keeping the shell, and exits 130).
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(
    subcommand,
    name = "run",
    example = "pwctl exec run web-0 uptime",
    example = "pwctl exec run web-0 -- ls -la /app",
    example = "pwctl exec run web-0 --file deploy.sh",
    example = "tar c dir | pwctl exec run web-0 --stdin 'tar x -C /srv'"
)]
pub struct ExecRun {
    /// the pod's alias
    #[argh(positional, arg_name = "alias")]
    pub alias: String,
    /// the shell command (several words are joined with spaces; put them after `--` when they
    /// start with '-')
    #[argh(positional, arg_name = "command")]
    pub command: Vec<String>,
    /// seconds the command may run (default: the daemon's, 30)
    #[argh(option, arg_name = "secs")]
    pub timeout: Option<f64>,
    /// run this script instead of a command (`-`: read it from stdin): any length, sourced in
    /// the pod's shell, so `cd` and `export` carry over
    #[argh(option, arg_name = "file")]
    pub file: Option<PathBuf>,
    /// feed this process's stdin to the command's stdin (staged in the pod first)
    #[argh(switch)]
    pub stdin: bool,
}

/// Run one command in many pods at once, as a job; a table of results follows (or live lines
/// with --stream, groups of identical output with --group). Exit status: 0 only when every pod
/// succeeded, else the largest of the pods' exit codes, where a pod that timed out counts 124,
/// one cancelled 130 and one that could not run or lost its connection 255 (pods skipped by
/// --max-failures or --canary count nothing themselves; 1 if only skips remain).
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(
    subcommand,
    name = "run-many",
    example = "pwctl exec run-many 'df -h' --aliases web-0,web-1",
    example = "pwctl exec run-many 'echo $POD_NAME; uname -s' --all --show-output",
    example = "pwctl exec run-many 'cat /etc/os-release' --all --group --diff",
    example = "pwctl exec run-many 'tail -n 5 /var/log/app.log' --tag web --stream",
    example = "pwctl exec run-many ./deploy.sh --all --canary 1 --batch 10% --max-failures 2",
    example = "pwctl exec run-many --rerun-failed 12"
)]
pub struct ExecRunMany {
    /// the shell command (left out with --rerun-failed)
    #[argh(positional, arg_name = "command")]
    pub command: Vec<String>,
    /// comma-separated aliases
    #[argh(option, arg_name = "a,b,...")]
    pub aliases: Option<String>,
    /// every pod with this tag
    #[argh(option, arg_name = "tag")]
    pub tag: Option<String>,
    /// every current member of this pod set
    #[argh(option, arg_name = "set")]
    pub set: Option<String>,
    /// every registered pod
    #[argh(switch)]
    pub all: bool,
    /// seconds each pod's command may run (default: the daemon's)
    #[argh(option, arg_name = "secs")]
    pub timeout: Option<f64>,
    /// pods that run at once (default: the daemon's)
    #[argh(option, arg_name = "n")]
    pub concurrency: Option<usize>,
    /// print each pod's output under a header after the table
    #[argh(switch)]
    pub show_output: bool,
    /// print output lines as they arrive, each prefixed by its pod (one colour per pod)
    #[argh(switch)]
    pub stream: bool,
    /// fold pods with identical output and exit code into one block, largest first
    #[argh(switch)]
    pub group: bool,
    /// with the groups, show how each smaller group's output differs from the largest's
    #[argh(switch)]
    pub diff: bool,
    /// run in waves of N pods or P% of them, each after the previous one ended
    #[argh(option, arg_name = "n|p%")]
    pub batch: Option<String>,
    /// stop starting pods once more than N pods (or P% of them) failed; the rest are skipped
    #[argh(option, arg_name = "n|p%")]
    pub max_failures: Option<String>,
    /// run N pods first; if any of them fails, skip the rest
    #[argh(option, arg_name = "n")]
    pub canary: Option<usize>,
    /// run on N of the pods, chosen at random
    #[argh(option, arg_name = "n")]
    pub pick: Option<usize>,
    /// run job JOB's command again on its pods that failed, timed out or could not run
    #[argh(option, arg_name = "job")]
    pub rerun_failed: Option<i64>,
}

/// Show a fan-out job again: its pods folded into groups of identical output, largest first.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "job", example = "pwctl exec job 12 --diff")]
pub struct ExecJob {
    /// the job's id (printed by run-many, listed by exec jobs)
    #[argh(positional, arg_name = "id")]
    pub id: i64,
    /// show how each smaller group's output differs from the largest's
    #[argh(switch)]
    pub diff: bool,
}

/// List recent fan-out jobs, newest first.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "jobs")]
pub struct ExecJobs {
    /// how many (default 20)
    #[argh(option, arg_name = "n", default = "20")]
    pub limit: usize,
}

/// Show past commands, newest first.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "history")]
pub struct ExecHistory {
    /// only this pod's commands
    #[argh(option, arg_name = "alias")]
    pub alias: Option<String>,
    /// only commands run in members of this pod set, gone pods included
    #[argh(option, arg_name = "set")]
    pub set: Option<String>,
    /// only commands this caller asked for, e.g. unix:1000(alice) or key:ci
    #[argh(option, arg_name = "actor")]
    pub actor: Option<String>,
    /// only commands that did not succeed (failed, timeout, error, interrupted)
    #[argh(switch)]
    pub failed: bool,
    /// only this status: running, succeeded, failed, timeout, error, cancelled, skipped, ...
    #[argh(option, arg_name = "status")]
    pub status: Option<String>,
    /// only commands started at or after this RFC 3339 time
    #[argh(option, arg_name = "time")]
    pub since: Option<String>,
    /// only the commands of this fan-out job
    #[argh(option, arg_name = "id")]
    pub job: Option<i64>,
    /// how many (default 20)
    #[argh(option, arg_name = "n", default = "20")]
    pub limit: usize,
    /// continue from an earlier page's cursor
    #[argh(option, arg_name = "cursor")]
    pub cursor: Option<String>,
    /// write the whole (filtered) history with full output, oldest first, as ndjson or csv
    #[argh(option, arg_name = "format")]
    pub export: Option<String>,
}

/// Show one past command with its full output.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "show")]
pub struct ExecShow {
    /// the command's id (from exec history)
    #[argh(positional, arg_name = "id")]
    pub id: i64,
    /// print only the command's stdout, raw, as stored
    #[argh(switch)]
    pub stdout: bool,
    /// print only the command's stderr, raw, as stored
    #[argh(switch)]
    pub stderr: bool,
    /// with --stdout or --stderr: only these bytes, FIRST-LAST, FIRST- or -SUFFIX
    #[argh(option, arg_name = "bytes")]
    pub range: Option<String>,
}

/// Pod sets: a cluster, namespace and label selector whose Ready pods stay registered as
/// SET/POD while the cluster rolls them.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "set")]
pub struct SetCmd {
    #[argh(subcommand)]
    pub command: SetCommand,
}

#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand)]
pub enum SetCommand {
    Add(SetAdd),
    List(SetList),
    Show(SetShow),
    Delete(SetDelete),
}

/// Create a pod set on a cluster the daemon's configuration names (pwctl clusters).
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(
    subcommand,
    name = "add",
    example = "pwctl set add web --cluster prod -n shop -l app=web",
    example = "pwctl exec run-many 'git -C /app log -1' --set web"
)]
pub struct SetAdd {
    /// the set's name; members are NAME/POD
    #[argh(positional, arg_name = "name")]
    pub name: String,
    /// a cluster of the daemon's configuration ([clusters.NAME])
    #[argh(option, arg_name = "cluster")]
    pub cluster: String,
    /// the pods' namespace
    #[argh(option, short = 'n', arg_name = "namespace")]
    pub namespace: String,
    /// label selector, e.g. app=web or 'tier in (a,b)'
    #[argh(option, short = 'l', arg_name = "selector")]
    pub selector: String,
    /// container to exec into (default: the pod's first)
    #[argh(option, arg_name = "container")]
    pub container: Option<String>,
}

/// List pod sets with their member counts.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "list")]
pub struct SetList {}

/// Show a pod set and its members.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "show")]
pub struct SetShow {
    /// the set's name
    #[argh(positional, arg_name = "name")]
    pub name: String,
}

/// Delete a pod set; its members are retired, their history stays.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "delete")]
pub struct SetDelete {
    /// the set's name
    #[argh(positional, arg_name = "name")]
    pub name: String,
}

/// Show who registered, changed, imported and removed pods, newest first.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(
    subcommand,
    name = "audit",
    example = "pwctl audit --actor 'unix:1000(alice)' --limit 50"
)]
pub struct AuditCmd {
    /// only what this caller did, e.g. unix:1000(alice) or key:ci
    #[argh(option, arg_name = "actor")]
    pub actor: Option<String>,
    /// how many (default 20)
    #[argh(option, arg_name = "n", default = "20")]
    pub limit: usize,
    /// continue from an earlier page's cursor
    #[argh(option, arg_name = "cursor")]
    pub cursor: Option<String>,
}

/// Copy a file into pods or out of one, over their sessions. Each pod writes a temp file,
/// renames it into place and computes its SHA-256, which must match what was sent; one row per
/// pod says so. Exits 0 only when every copy verified.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(
    subcommand,
    name = "cp",
    example = "pwctl cp app.conf web-0:/etc/app/app.conf",
    example = "pwctl cp build.tar.gz --tag prod :/tmp/",
    example = "pwctl cp web-0:/var/log/app.log ./app.log"
)]
pub struct CpCmd {
    /// a local file (`-`: stdin), or ALIAS:PATH to copy out of a pod
    #[argh(positional, arg_name = "source")]
    pub source: String,
    /// ALIAS:PATH, :PATH with --pods/--tag/--all (a PATH ending in `/` takes the source's
    /// name), or a local file (`-`: stdout) when the source is in a pod
    #[argh(positional, arg_name = "destination")]
    pub destination: String,
    /// comma-separated aliases (with :PATH)
    #[argh(option, arg_name = "a,b,...")]
    pub pods: Option<String>,
    /// every pod with this tag (with :PATH)
    #[argh(option, arg_name = "tag")]
    pub tag: Option<String>,
    /// every registered pod (with :PATH)
    #[argh(switch)]
    pub all: bool,
    /// octal permission bits for the new files, e.g. 644 (default: the local file's)
    #[argh(option, arg_name = "mode")]
    pub mode: Option<String>,
    /// pods that receive the file at once (default: the daemon's)
    #[argh(option, arg_name = "n")]
    pub concurrency: Option<usize>,
}

/// List the Kubernetes clusters the daemon's administrator configured, for --cluster.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "clusters")]
pub struct ClustersCmd {}

/// Print a shell completion script: bash, zsh or fish.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(
    subcommand,
    name = "completions",
    example = "pwctl completions bash > /etc/bash_completion.d/pwctl",
    example = "pwctl completions fish > ~/.config/fish/completions/pwctl.fish"
)]
pub struct CompletionsCmd {
    /// bash, zsh or fish
    #[argh(positional, arg_name = "shell")]
    pub shell: String,
}

/// Print pwctl's man page (roff): pwctl man > pwctl.1
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "man")]
pub struct ManCmd {}
