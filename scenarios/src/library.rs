//! The scenario library: the TOML files under `scenarios/` and `scenarios/regressions/`.

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
