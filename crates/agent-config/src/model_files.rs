//! The default plate models must be the files `models/MANIFEST` names, byte for byte: a partial
//! download or a swapped model would read plates wrongly, and silently. Checked at start. A
//! detector the config names explicitly (`[plates] detector`) is the operator's choice and is
//! not checked.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The manifest of the models this build was tested with.
const MANIFEST: &str = include_str!("../../../models/MANIFEST");

#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("model file {path}: cannot read it: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "model file {path} is not the one models/MANIFEST names (sha256 {found}, expected \
         {expected}): {}, or name another model explicitly in [plates]",
        crate::restore_hint()
    )]
    Mismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
}

/// `(file name, sha256 hex)` for every file the manifest lists (lines `<hex>  <name>`).
pub fn manifest_entries(manifest: &str) -> Vec<(&str, &str)> {
    manifest
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let (hash, name) = l.split_once("  ")?;
            let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
            hex.then_some((name.trim(), hash))
        })
        .collect()
}

/// Checks each file of this build's manifest in `models_dir`, except those in `skip`.
pub fn verify(models_dir: &Path, skip: &[&str]) -> Result<(), ModelFileError> {
    verify_against(MANIFEST, models_dir, skip)
}

fn verify_against(manifest: &str, models_dir: &Path, skip: &[&str]) -> Result<(), ModelFileError> {
    for (name, expected) in manifest_entries(manifest) {
        if skip.contains(&name) {
            continue;
        }
        let path = models_dir.join(name);
        let found = sha256_hex(&path).map_err(|source| ModelFileError::Unreadable {
            path: path.clone(),
            source,
        })?;
        if !found.eq_ignore_ascii_case(expected) {
            return Err(ModelFileError::Mismatch {
                path,
                expected: expected.to_string(),
                found,
            });
        }
    }
    Ok(())
}

fn sha256_hex(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        context.update(&buf[..n]);
    }
    Ok(context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_builds_manifest_lists_the_three_default_files() {
        let names: Vec<&str> = manifest_entries(MANIFEST).iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["clp_det.onnx", "clp_v2_c_rec.onnx", "clp_dict.txt"]);
    }

    #[test]
    fn a_changed_or_missing_file_is_refused_unless_skipped() {
        let dir = tempfile::tempdir().unwrap();
        // sha256("abc") and sha256("") as the manifest would list them.
        let manifest = "# comment\n\
            ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  a.onnx\n\
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  b.txt\n";
        std::fs::write(dir.path().join("a.onnx"), "abc").unwrap();
        std::fs::write(dir.path().join("b.txt"), "").unwrap();
        verify_against(manifest, dir.path(), &[]).unwrap();

        std::fs::write(dir.path().join("a.onnx"), "abd").unwrap();
        match verify_against(manifest, dir.path(), &[]) {
            Err(ModelFileError::Mismatch { path, .. }) => assert!(path.ends_with("a.onnx")),
            other => panic!("{other:?}"),
        }
        verify_against(manifest, dir.path(), &["a.onnx"]).unwrap();
        std::fs::remove_file(dir.path().join("b.txt")).unwrap();
        assert!(matches!(
            verify_against(manifest, dir.path(), &["a.onnx"]),
            Err(ModelFileError::Unreadable { .. })
        ));
    }

    /// The models setup.sh installed in this tree are the manifest's.
    #[test]
    fn the_installed_models_match() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        verify(&models, &[]).unwrap();
    }
}
