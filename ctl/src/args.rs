//! Lets global options (`--json`, `--socket`, ...) come after the subcommand, as people type
//! them (`pwctl pod list --json`). argh only accepts a command's own flags at its level, so they
//! are moved to the front before parsing. `--` ends the moving: what follows belongs to the
//! remote command.

use argh::{CommandInfoWithArgs, FlagInfoKind};

use crate::cli::GLOBAL_FLAGS;

fn global(arg: &str) -> Option<bool> {
    GLOBAL_FLAGS.iter().find_map(|(long, short, takes_value)| {
        let short_match =
            short.is_some_and(|c| arg.len() == 2 && arg.ends_with(c) && arg.starts_with('-'));
        (arg == *long || short_match).then_some(*takes_value)
    })
}

fn takes_value(info: &CommandInfoWithArgs, arg: &str) -> bool {
    info.flags.iter().any(|f| {
        let matches = f.long == arg
            || f.short
                .is_some_and(|c| arg.len() == 2 && arg.starts_with('-') && arg.ends_with(c));
        matches && matches!(f.kind, FlagInfoKind::Option { .. })
    })
}

/// Reorders `args` (without the program name): global options first, the rest in order.
pub fn hoist_globals(root: &CommandInfoWithArgs, args: &[String]) -> Vec<String> {
    let mut globals = Vec::new();
    let mut rest = Vec::new();
    let mut level = root;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            rest.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(global_takes_value) = global(arg) {
            globals.push(arg.clone());
            if global_takes_value && i + 1 < args.len() {
                globals.push(args[i + 1].clone());
                i += 1;
            }
            i += 1;
            continue;
        }
        rest.push(arg.clone());
        if arg.starts_with('-') {
            if takes_value(level, arg) && i + 1 < args.len() {
                rest.push(args[i + 1].clone());
                i += 1;
            }
        } else if let Some(sub) = level.commands.iter().find(|c| c.name == arg) {
            level = &sub.command;
        }
        i += 1;
    }
    globals.extend(rest);
    globals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Pwctl;
    use argh::ArgsInfo;

    fn hoist(args: &[&str]) -> Vec<String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        hoist_globals(&Pwctl::get_args_info(), &args)
    }

    #[test]
    fn globals_after_the_subcommand_move_to_the_front() {
        assert_eq!(
            hoist(&["pod", "list", "--json", "--socket", "/s"]),
            ["--json", "--socket", "/s", "pod", "list"]
        );
        assert_eq!(hoist(&["health", "-L"]), ["-L", "health"]);
    }

    #[test]
    fn nothing_after_double_dash_moves_and_option_values_stay_put() {
        assert_eq!(
            hoist(&["exec", "run", "web", "--", "tool", "--json"]),
            ["exec", "run", "web", "--", "tool", "--json"]
        );
        // `--json` here is the value of --tag, not the global switch.
        assert_eq!(
            hoist(&["pod", "list", "--tag", "--json"]),
            ["pod", "list", "--tag", "--json"]
        );
    }
}
