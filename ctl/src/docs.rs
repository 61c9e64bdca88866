//! The man page and the bash, zsh and fish completion scripts, generated from the argh
//! definitions in `cli.rs` so they always cover every command and flag.

use std::fmt::Write as _;

use argh::{ArgsInfo, CommandInfoWithArgs, FlagInfo, FlagInfoKind, Optionality};

use crate::cli::{GLOBAL_FLAGS, Pwctl};
use crate::error::EXIT_CODES;

/// One command of the tree, with the words that reach it (`["pwctl", "pod", "add"]`).
struct Node<'a> {
    path: Vec<&'a str>,
    info: &'a CommandInfoWithArgs,
}

impl Node<'_> {
    fn key(&self) -> String {
        self.path.join(" ")
    }

    fn flags(&self) -> impl Iterator<Item = &FlagInfo<'static>> {
        self.info
            .flags
            .iter()
            .filter(|f| !f.hidden && f.long != "--help")
    }

    fn subcommands(&self) -> Vec<(&str, &str)> {
        self.info
            .commands
            .iter()
            .map(|c| (c.name, c.command.description))
            .collect()
    }
}

fn walk<'a>(info: &'a CommandInfoWithArgs, path: Vec<&'a str>, out: &mut Vec<Node<'a>>) {
    out.push(Node {
        path: path.clone(),
        info,
    });
    for sub in &info.commands {
        let mut p = path.clone();
        p.push(sub.name);
        walk(&sub.command, p, out);
    }
}

/// What a flag's value or a positional completes to.
#[derive(Debug, PartialEq)]
enum Hint {
    None,
    File,
    Alias,
    Words(&'static str),
}

impl Hint {
    /// The action word the shell helpers understand.
    fn action(&self) -> String {
        match self {
            Hint::None => "@none".into(),
            Hint::File => "@file".into(),
            Hint::Alias => "@alias".into(),
            Hint::Words(w) => (*w).to_string(),
        }
    }
}

fn flag_hint(path: &str, long: &str) -> Hint {
    match (path, long) {
        (_, "--socket" | "--token-file" | "--kubeconfig" | "--certificate-authority") => Hint::File,
        ("pwctl exec history", "--alias") | (_, "--aliases") => Hint::Alias,
        (_, "--provider") => Hint::Words("plaintty kubernetes"),
        (_, "--status") => Hint::Words("running succeeded failed timeout error interrupted"),
        (_, "--insecure-skip-tls-verify") => Hint::Words("true false"),
        _ => Hint::None,
    }
}

fn positional_hint(path: &str) -> Hint {
    match path {
        "pwctl pod show" | "pwctl pod update" | "pwctl pod remove" | "pwctl exec run" => {
            Hint::Alias
        }
        "pwctl completions" => Hint::Words("bash zsh fish"),
        _ => Hint::None,
    }
}

fn root() -> CommandInfoWithArgs {
    Pwctl::get_args_info()
}

fn nodes<'a>(root: &'a CommandInfoWithArgs) -> Vec<Node<'a>> {
    let mut out = Vec::new();
    walk(root, vec!["pwctl"], &mut out);
    out
}

fn global_flags(root: &CommandInfoWithArgs) -> Vec<&FlagInfo<'static>> {
    root.flags
        .iter()
        .filter(|f| GLOBAL_FLAGS.iter().any(|(long, _, _)| *long == f.long))
        .collect()
}

fn flag_words(f: &FlagInfo<'static>) -> Vec<String> {
    let mut words = vec![f.long.to_string()];
    if let Some(c) = f.short {
        words.push(format!("-{c}"));
    }
    words
}

fn takes_value(f: &FlagInfo<'static>) -> bool {
    matches!(f.kind, FlagInfoKind::Option { .. })
}

/// The shell helpers shared by bash and zsh: the tree as `case` tables.
fn shell_tables(root: &CommandInfoWithArgs) -> String {
    let nodes = nodes(root);
    let globals = global_flags(root);
    let mut s = String::new();

    s.push_str("_pwctl_subcommands() {\n    case \"$1\" in\n");
    for n in &nodes {
        let subs = n.subcommands();
        if !subs.is_empty() {
            let names: Vec<&str> = subs.iter().map(|(name, _)| *name).collect();
            let _ = writeln!(
                s,
                "        \"{}\") echo \"{}\" ;;",
                n.key(),
                names.join(" ")
            );
        }
    }
    s.push_str("    esac\n}\n");

    s.push_str("_pwctl_flags() {\n    case \"$1\" in\n");
    for n in &nodes {
        let mut words: Vec<String> = n.flags().flat_map(flag_words).collect();
        if n.path.len() > 1 {
            words.extend(globals.iter().flat_map(|f| flag_words(f)));
        }
        words.push("--help".into());
        let _ = writeln!(
            s,
            "        \"{}\") echo \"{}\" ;;",
            n.key(),
            words.join(" ")
        );
    }
    s.push_str("    esac\n}\n");

    s.push_str("_pwctl_value_flags() {\n    case \"$1\" in\n");
    for n in &nodes {
        let mut words: Vec<String> = n
            .flags()
            .filter(|f| takes_value(f))
            .flat_map(flag_words)
            .collect();
        words.extend(
            globals
                .iter()
                .filter(|f| takes_value(f))
                .flat_map(|f| flag_words(f)),
        );
        words.sort();
        words.dedup();
        let _ = writeln!(
            s,
            "        \"{}\") echo \"{}\" ;;",
            n.key(),
            words.join(" ")
        );
    }
    s.push_str("    esac\n}\n");

    s.push_str("_pwctl_value() {\n    case \"$1|$2\" in\n");
    for n in &nodes {
        let flags: Vec<&FlagInfo<'static>> = if n.path.len() > 1 {
            n.flags().chain(globals.iter().copied()).collect()
        } else {
            n.flags().collect()
        };
        for f in flags.into_iter().filter(|f| takes_value(f)) {
            let hint = flag_hint(&n.key(), f.long);
            if hint != Hint::None {
                for w in flag_words(f) {
                    let _ = writeln!(
                        s,
                        "        \"{}|{}\") echo \"{}\" ;;",
                        n.key(),
                        w,
                        hint.action()
                    );
                }
            }
        }
    }
    s.push_str("        *) echo \"@none\" ;;\n    esac\n}\n");

    s.push_str("_pwctl_positional() {\n    case \"$1\" in\n");
    for n in &nodes {
        let hint = positional_hint(&n.key());
        if hint != Hint::None {
            let _ = writeln!(s, "        \"{}\") echo \"{}\" ;;", n.key(), hint.action());
        }
    }
    s.push_str("        *) echo \"@none\" ;;\n    esac\n}\n");
    s
}

/// Walks the words typed so far to the command they name; shared by bash and zsh. `$1` is the
/// index of the first word after `pwctl`, `$2` the index of the word being completed; the
/// words are in the array named by `$3`. Sets `_pwctl_path` and `_pwctl_skip`.
const SHELL_WALK: &str = r#"_pwctl_walk() {
    local i w first=$1 last=$2
    _pwctl_path="pwctl"
    _pwctl_skip=0
    for (( i=first; i<last; i++ )); do
        eval "w=\${$3[i]}"
        if (( _pwctl_skip )); then _pwctl_skip=0; continue; fi
        if [[ "$w" == "--" ]]; then _pwctl_path="$_pwctl_path --"; return; fi
        if [[ " $(_pwctl_value_flags "$_pwctl_path") " == *" $w "* ]]; then
            _pwctl_skip=1
            continue
        fi
        if [[ "$w" != -* && " $(_pwctl_subcommands "$_pwctl_path") " == *" $w "* ]]; then
            _pwctl_path="$_pwctl_path $w"
        fi
    done
}
"#;

pub fn bash() -> String {
    let root = root();
    let mut s = String::from(
        "# bash completion for pwctl; generated by `pwctl completions bash`.\n\
         # Install: pwctl completions bash > /etc/bash_completion.d/pwctl\n",
    );
    s.push_str(&shell_tables(&root));
    s.push_str(SHELL_WALK);
    s.push_str(
        r#"_pwctl() {
    local cur="${COMP_WORDS[COMP_CWORD]}" action
    _pwctl_walk 1 "$COMP_CWORD" COMP_WORDS
    case "$_pwctl_path" in *" --") COMPREPLY=(); return ;; esac
    if (( _pwctl_skip )); then
        action=$(_pwctl_value "$_pwctl_path" "${COMP_WORDS[COMP_CWORD-1]}")
    elif [[ "$cur" == -* ]]; then
        COMPREPLY=( $(compgen -W "$(_pwctl_flags "$_pwctl_path")" -- "$cur") )
        return
    else
        local subs
        subs=$(_pwctl_subcommands "$_pwctl_path")
        if [[ -n "$subs" ]]; then
            COMPREPLY=( $(compgen -W "$subs" -- "$cur") )
            return
        fi
        action=$(_pwctl_positional "$_pwctl_path")
    fi
    case "$action" in
        @file) COMPREPLY=( $(compgen -f -- "$cur") ) ;;
        @alias) COMPREPLY=( $(compgen -W "$(pwctl pod list -q 2>/dev/null)" -- "$cur") ) ;;
        @none) COMPREPLY=() ;;
        *) COMPREPLY=( $(compgen -W "$action" -- "$cur") ) ;;
    esac
}
complete -F _pwctl pwctl
"#,
    );
    s
}

fn zsh_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$")
        .replace('`', "\\`")
        .replace('\n', " ")
}

pub fn zsh() -> String {
    let root = root();
    let nodes = nodes(&root);
    let globals = global_flags(&root);
    let mut s = String::from(
        "#compdef pwctl\n# zsh completion for pwctl; generated by `pwctl completions zsh`.\n\
         # Install: pwctl completions zsh > \"${fpath[1]}/_pwctl\"\n",
    );
    s.push_str(&shell_tables(&root));
    s.push_str(SHELL_WALK);

    s.push_str("_pwctl_describe_subcommands() {\n    case \"$1\" in\n");
    for n in &nodes {
        let subs = n.subcommands();
        if !subs.is_empty() {
            let _ = write!(s, "        \"{}\") print -rl --", n.key());
            for (name, desc) in subs {
                let _ = write!(s, " \"{}:{}\"", name, zsh_escape(first_sentence(desc)));
            }
            s.push_str(" ;;\n");
        }
    }
    s.push_str("    esac\n}\n");

    s.push_str("_pwctl_describe_flags() {\n    case \"$1\" in\n");
    for n in &nodes {
        let _ = write!(s, "        \"{}\") print -rl --", n.key());
        let flags: Vec<&FlagInfo<'static>> = if n.path.len() > 1 {
            n.flags().chain(globals.iter().copied()).collect()
        } else {
            n.flags().collect()
        };
        for f in flags {
            for w in flag_words(f) {
                let _ = write!(s, " \"{}:{}\"", w, zsh_escape(f.description));
            }
        }
        s.push_str(" \"--help:show help\" ;;\n");
    }
    s.push_str("    esac\n}\n");

    s.push_str(
        r#"_pwctl() {
    local cur="${words[CURRENT]}" action
    local -a items
    _pwctl_walk 2 "$CURRENT" words
    case "$_pwctl_path" in *" --") _default; return ;; esac
    if (( _pwctl_skip )); then
        action=$(_pwctl_value "$_pwctl_path" "${words[CURRENT-1]}")
    elif [[ "$cur" == -* ]]; then
        items=("${(@f)$(_pwctl_describe_flags "$_pwctl_path")}")
        _describe -t options 'option' items
        return
    else
        items=("${(@f)$(_pwctl_describe_subcommands "$_pwctl_path")}")
        if [[ -n "${items[1]}" ]]; then
            _describe -t commands 'command' items
            return
        fi
        action=$(_pwctl_positional "$_pwctl_path")
    fi
    case "$action" in
        @file) _files ;;
        @alias) items=("${(@f)$(pwctl pod list -q 2>/dev/null)}"); compadd -a items ;;
        @none) ;;
        *) compadd -- ${=action} ;;
    esac
}
_pwctl "$@"
"#,
    );
    s
}

fn first_sentence(text: &str) -> &str {
    let text = text.trim();
    match text.find(". ") {
        Some(i) => &text[..i],
        None => text.trim_end_matches('.'),
    }
}

fn fish_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\'', "\\'")
        .replace('\n', " ")
}

pub fn fish() -> String {
    let root = root();
    let nodes = nodes(&root);
    let globals = global_flags(&root);
    let mut s = String::from(
        "# fish completion for pwctl; generated by `pwctl completions fish`.\n\
         # Install: pwctl completions fish > ~/.config/fish/completions/pwctl.fish\n",
    );
    s.push_str("function __pwctl_subcommands\n    switch $argv[1]\n");
    for n in &nodes {
        let subs = n.subcommands();
        if !subs.is_empty() {
            let names: Vec<&str> = subs.iter().map(|(name, _)| *name).collect();
            let _ = writeln!(
                s,
                "        case '{}'\n            printf '%s\\n' {}",
                n.key(),
                names.join(" ")
            );
        }
    }
    s.push_str("    end\nend\n");
    s.push_str("function __pwctl_value_flags\n    switch $argv[1]\n");
    for n in &nodes {
        let mut words: Vec<String> = n
            .flags()
            .chain(globals.iter().copied())
            .filter(|f| takes_value(f))
            .flat_map(flag_words)
            .collect();
        words.sort();
        words.dedup();
        let _ = writeln!(
            s,
            "        case '{}'\n            printf '%s\\n' -- {}",
            n.key(),
            words.join(" ")
        );
    }
    s.push_str("    end\nend\n");
    s.push_str(
        r#"function __pwctl_path
    set -l path pwctl
    set -l skip 0
    for w in (commandline -opc)[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        if test "$w" = --
            echo "$path --"
            return
        end
        if contains -- $w (__pwctl_value_flags $path)
            set skip 1
            continue
        end
        if not string match -q -- '-*' $w; and contains -- $w (__pwctl_subcommands $path)
            set path "$path $w"
        end
    end
    echo $path
end
function __pwctl_at
    test (__pwctl_path) = "$argv[1]"
end
complete -c pwctl -f
"#,
    );
    for f in &globals {
        let _ = writeln!(s, "{}", fish_flag("", f, "pwctl"));
    }
    for n in &nodes {
        let key = n.key();
        let cond = format!("-n '__pwctl_at \"{key}\"'");
        for (name, desc) in n.subcommands() {
            let _ = writeln!(
                s,
                "complete -c pwctl {cond} -a {name} -d '{}'",
                fish_escape(first_sentence(desc))
            );
        }
        for f in n.flags() {
            if n.path.len() == 1 && globals.iter().any(|g| g.long == f.long) {
                continue;
            }
            let _ = writeln!(s, "{}", fish_flag(&cond, f, &key));
        }
        match positional_hint(&key) {
            Hint::Alias => {
                let _ = writeln!(
                    s,
                    "complete -c pwctl {cond} -a '(pwctl pod list -q 2>/dev/null)'"
                );
            }
            Hint::Words(w) => {
                let _ = writeln!(s, "complete -c pwctl {cond} -a '{w}'");
            }
            Hint::File => {
                let _ = writeln!(s, "complete -c pwctl {cond} -F");
            }
            Hint::None => {}
        }
    }
    s
}

fn fish_flag(cond: &str, f: &FlagInfo<'static>, path: &str) -> String {
    let mut line = String::from("complete -c pwctl");
    if !cond.is_empty() {
        line.push(' ');
        line.push_str(cond);
    }
    let _ = write!(line, " -l {}", f.long.trim_start_matches("--"));
    if let Some(c) = f.short {
        let _ = write!(line, " -s {c}");
    }
    if takes_value(f) {
        line.push_str(" -r");
        match flag_hint(path, f.long) {
            Hint::File => line.push_str(" -F"),
            Hint::Alias => line.push_str(" -a '(pwctl pod list -q 2>/dev/null)'"),
            Hint::Words(w) => {
                let _ = write!(line, " -a '{w}'");
            }
            Hint::None => {}
        }
    }
    let _ = write!(line, " -d '{}'", fish_escape(f.description));
    line
}

/// roff-escapes text for the body of a man page.
fn roff(text: &str) -> String {
    let escaped = text
        .trim()
        .replace('\\', "\\e")
        .replace('-', "\\-")
        .replace('\'', "\\(aq");
    // A line starting with '.' or the escaped quote would read as a request.
    escaped
        .lines()
        .map(|l| {
            if l.starts_with('.') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn usage(n: &Node<'_>) -> String {
    let mut parts: Vec<String> = n.path.iter().map(|p| format!("\\fB{p}\\fR")).collect();
    for f in n.flags() {
        let word = match f.kind {
            FlagInfoKind::Switch => format!("\\fB{}\\fR", roff(f.long)),
            FlagInfoKind::Option { arg_name } => {
                format!("\\fB{}\\fR \\fI{}\\fR", roff(f.long), roff(arg_name))
            }
        };
        parts.push(match f.optionality {
            Optionality::Required => word,
            Optionality::Repeating => format!("[{word}]..."),
            _ => format!("[{word}]"),
        });
    }
    for p in n.info.positionals.iter().filter(|p| !p.hidden) {
        let word = format!("\\fI{}\\fR", roff(p.name));
        parts.push(match p.optionality {
            Optionality::Required => word,
            Optionality::Optional => format!("[{word}]"),
            _ => format!("[{word}...]"),
        });
    }
    if !n.subcommands().is_empty() {
        parts.push("\\fIcommand\\fR".into());
    }
    parts.join(" ")
}

fn man_flag(s: &mut String, f: &FlagInfo<'static>) {
    s.push_str(".TP\n");
    let mut head = String::new();
    if let Some(c) = f.short {
        let _ = write!(head, "\\fB\\-{c}\\fR, ");
    }
    let _ = write!(head, "\\fB{}\\fR", roff(f.long));
    if let FlagInfoKind::Option { arg_name } = f.kind {
        let _ = write!(head, " \\fI{}\\fR", roff(arg_name));
    }
    let _ = writeln!(s, "{head}\n{}", roff(f.description));
}

pub fn man() -> String {
    let root = root();
    let nodes = nodes(&root);
    let version = env!("CARGO_PKG_VERSION");
    let mut s = String::new();
    let _ = writeln!(
        s,
        ".\\\" Generated by `pwctl man`; do not edit.\n.TH PWCTL 1 \"\" \"pwctl {version}\" \"PodWrangler\"\n.SH NAME\npwctl \\- PodWrangler command\\-line client\n.SH SYNOPSIS\n\\fBpwctl\\fR [\\fIglobal options\\fR] \\fIcommand\\fR [\\fIoptions\\fR] [\\fIargs\\fR]\n.SH DESCRIPTION\n{}",
        roff(root.description)
    );
    for note in root.notes {
        let _ = writeln!(s, ".PP\n{}", roff(&note.replace("{command_name}", "pwctl")));
    }
    s.push_str(".SH GLOBAL OPTIONS\n");
    for f in global_flags(&root) {
        man_flag(&mut s, f);
    }
    s.push_str(".TP\n\\fB\\-\\-version\\fR\nprint pwctl\\(aqs version\n.TP\n\\fB\\-\\-help\\fR\nprint help for any command\n");
    s.push_str(".SH COMMANDS\n");
    for n in nodes.iter().skip(1) {
        let _ = writeln!(
            s,
            ".SS \"{}\"\n{}\n.PP\n{}",
            n.key(),
            roff(n.info.description),
            usage(n)
        );
        for p in n.info.positionals.iter().filter(|p| !p.hidden) {
            let _ = writeln!(s, ".TP\n\\fI{}\\fR\n{}", roff(p.name), roff(p.description));
        }
        for f in n.flags() {
            man_flag(&mut s, f);
        }
        for ex in n.info.examples {
            let _ = writeln!(
                s,
                ".PP\nExample:\n.EX\n{}\n.EE",
                roff(&ex.replace("{command_name}", "pwctl"))
            );
        }
    }
    s.push_str(".SH EXIT STATUS\n\\fBpwctl exec run\\fR exits with the remote command\\(aqs exit code when the command ran (use \\fB\\-\\-json\\fR to tell it from pwctl\\(aqs own codes). Otherwise:\n");
    for (code, text) in EXIT_CODES {
        let _ = writeln!(s, ".TP\n\\fB{code}\\fR\n{}", roff(text));
    }
    s.push_str(
        ".SH ENVIRONMENT\n\
         .TP\n\\fBPODWRANGLER_API_URL\\fR\nthe daemon\\(aqs TCP URL (like \\fB\\-\\-api\\-url\\fR)\n\
         .TP\n\\fBPODWRANGLER_SOCKET\\fR\nthe daemon\\(aqs Unix socket (like \\fB\\-\\-socket\\fR)\n\
         .TP\n\\fBPODWRANGLER_API_KEY\\fR\nthe API key sent over TCP (like \\fB\\-\\-api\\-key\\fR)\n\
         .TP\n\\fBNO_COLOR\\fR\nany value turns colours off\n\
         .SH FILES\n\
         .TP\n\\fI$XDG_CONFIG_HOME/podwrangler/pwctl.toml\\fR\nkeys \\fBapi_url\\fR, \\fBapi_key\\fR, \\fBsocket\\fR\n\
         .TP\n\\fI~/.podwrangler.toml\\fR\nthe Python client\\(aqs config; its \\fBapi_url\\fR is honoured\n\
         .TP\n\\fI$XDG_RUNTIME_DIR/podwrangler/podwranglerd.sock\\fR\nthe user\\-mode daemon\\(aqs socket (\\fB\\-\\-local\\fR starts a daemon there)\n\
         .TP\n\\fI/run/podwrangler/podwranglerd.sock\\fR\nthe system daemon\\(aqs socket\n",
    );
    s.push_str(".SH EXAMPLES\n");
    for ex in root.examples {
        let _ = writeln!(
            s,
            ".EX\n{}\n.EE",
            roff(&ex.replace("{command_name}", "pwctl"))
        );
    }
    s.push_str(".SH SEE ALSO\n\\fBpodwranglerd\\fR(8)\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_command_and_flag() -> Vec<(String, Vec<String>)> {
        let root = root();
        nodes(&root)
            .iter()
            .map(|n| (n.key(), n.flags().map(|f| f.long.to_string()).collect()))
            .collect()
    }

    #[test]
    fn completions_and_man_cover_every_command_and_flag() {
        let (bash, zsh, fish, man) = (bash(), zsh(), fish(), man());
        for (path, flags) in every_command_and_flag() {
            let last = path.rsplit(' ').next().unwrap().to_string();
            assert!(bash.contains(&format!("\"{path}\")")), "bash lacks {path}");
            assert!(zsh.contains(&format!("\"{path}\")")), "zsh lacks {path}");
            assert!(fish.contains(&format!("'{path}'")), "fish lacks {path}");
            assert!(
                man.contains(&format!(".SS \"{path}\"")) || path == "pwctl",
                "man lacks {path}"
            );
            assert!(bash.contains(&last));
            for flag in flags {
                assert!(bash.contains(&flag), "bash lacks {path} {flag}");
                assert!(
                    zsh.contains(&format!("\"{flag}:")),
                    "zsh lacks {path} {flag}"
                );
                assert!(
                    fish.contains(&format!("-l {}", flag.trim_start_matches("--"))),
                    "fish lacks {path} {flag}"
                );
                assert!(man.contains(&roff(&flag)), "man lacks {path} {flag}");
            }
        }
    }

    #[test]
    fn help_and_man_list_the_same_exit_codes() {
        let root = root();
        let from_argh: Vec<(i32, &str)> = root
            .error_codes
            .iter()
            .map(|e| (e.code, e.description))
            .collect();
        assert_eq!(from_argh, EXIT_CODES.to_vec());
    }

    #[test]
    fn roff_escapes_dashes_and_leading_dots() {
        assert_eq!(roff("--json"), "\\-\\-json");
        assert_eq!(roff(".hidden"), "\\&.hidden");
    }
}
