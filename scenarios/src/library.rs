//! The scenario library: the TOML files under `scenarios/` and `scenarios/regressions/`,
//! and, found by name but not part of the library's runs, the live variants under
//! `scenarios/live/` (scenarios that only a live run plays) and the long ones under
//! `scenarios/long/` (hours of simulated time: seconds of wall time each, so the test
//! command plays them once, `wekasim suite --scenarios scenarios/long --seeds 0`).

use std::path::{Path, PathBuf};

/// Where scenario files are looked for when no directory is given: `./scenarios` if it
/// exists, else the project's own `scenarios/` (the path is fixed at build time, so the
/// binary finds its library from any working directory).
pub fn default_dir() -> PathBuf {
    let local = PathBuf::from("scenarios");
    if local.join("startup-unwrap.toml").is_file() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Every scenario file of the library, sorted, regressions last.
pub fn all(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = toml_files(dir)?;
    let regressions = dir.join("regressions");
    if regressions.is_dir() {
        files.extend(toml_files(&regressions)?);
    }
    if files.is_empty() {
        return Err(format!("no scenario files (*.toml) in {}", dir.display()));
    }
    Ok(files)
}

fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list scenario directory {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        // The library shares its folder with the crate that reads it.
        .filter(|p| p.file_name().is_some_and(|n| n != "Cargo.toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// A scenario by name (`startup-unwrap`) or by path (`my/file.toml`).
pub fn find(name_or_path: &str, dir: &Path) -> Result<PathBuf, String> {
    let as_path = Path::new(name_or_path);
    if as_path.extension().is_some_and(|x| x == "toml") {
        return if as_path.is_file() {
            Ok(as_path.to_path_buf())
        } else {
            Err(format!("scenario file {name_or_path} does not exist"))
        };
    }
    for candidate in [
        dir.join(format!("{name_or_path}.toml")),
        dir.join("regressions").join(format!("{name_or_path}.toml")),
        dir.join("live").join(format!("{name_or_path}.toml")),
        dir.join("long").join(format!("{name_or_path}.toml")),
    ] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    let known: Vec<String> = all(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    Err(format!(
        "unknown scenario {name_or_path:?}; known scenarios in {}: {}",
        dir.display(),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::scenario::{Scenario, Step};

    /// The actions the README's "Scenario files" section lists: the backticked names in
    /// its bullets from "Actions:" to the next paragraph, outside parentheses (which hold
    /// an action's fields and values).
    fn readme_actions(readme: &str) -> BTreeSet<String> {
        let list = readme
            .split_once("\nActions:\n")
            .expect("README has an Actions: list")
            .1
            .split("\n\n")
            .next()
            .unwrap_or_default();
        let mut depth = 0u32;
        let mut outside = String::new();
        for c in list.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ if depth == 0 => outside.push(c),
                _ => {}
            }
        }
        outside
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
            .map(str::to_string)
            .collect()
    }

    /// The long scenarios load, are found by name, and stay out of the library's runs.
    #[test]
    fn long_scenarios_load_and_stay_out_of_the_library() {
        let dir = default_dir();
        let long = toml_files(&dir.join("long")).expect("scenarios/long");
        assert!(!long.is_empty(), "no long scenarios");
        let library = all(&dir).expect("the library");
        for path in &long {
            Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
            let name = path.file_stem().and_then(|n| n.to_str()).expect("a name");
            assert_eq!(find(name, &dir).expect("found by name"), *path);
            assert!(
                !library.iter().any(|p| p.file_stem() == path.file_stem()),
                "{name} is in the library's runs"
            );
        }
    }

    /// The README cannot claim an action no library scenario plays: each listed action,
    /// and `partition` with `oneway`, is a step of some scenario file.
    #[test]
    fn every_action_the_readme_lists_is_played_by_a_library_scenario() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
        let listed = readme_actions(&readme);
        assert!(listed.len() >= 20, "too few actions parsed: {listed:?}");

        let mut played = BTreeSet::new();
        for path in all(&default_dir()).expect("the library") {
            let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            for step in &scenario.steps {
                let value = serde_json::to_value(step).expect("a step serializes");
                played.insert(value["action"].as_str().expect("tagged").to_string());
                if matches!(step, Step::Partition { oneway: true, .. }) {
                    played.insert("partition oneway".to_string());
                }
            }
        }
        let mut missing: Vec<&String> = listed.iter().filter(|a| !played.contains(*a)).collect();
        let oneway = "partition oneway".to_string();
        if !played.contains(&oneway) {
            missing.push(&oneway);
        }
        assert!(
            missing.is_empty(),
            "README lists actions no scenario plays: {missing:?}"
        );
    }

    #[test]
    fn readme_actions_are_the_names_outside_parentheses() {
        let readme = "x\nActions:\n\n- a: `weka` (`command`, e.g. `weka fs`), `kms-set`;\n  each takes `expect = \"ok\"`\n- b: `hold`, `latency` (`max`)\n\nAfter";
        let actions: Vec<String> = readme_actions(readme).into_iter().collect();
        assert_eq!(actions, ["hold", "kms-set", "latency", "weka"]);
    }
}
