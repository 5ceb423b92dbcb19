use std::path::Path;
use std::sync::OnceLock;

use crate::PlateError;

static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();

/// Loads `libonnxruntime.so` from `path` and creates the process-wide ONNX Runtime environment.
/// Must run once before any model is opened; later calls are no-ops.
pub fn load_onnx_runtime(path: &Path) -> Result<(), PlateError> {
    if ENVIRONMENT.get().is_some() {
        return Ok(());
    }
    let err = |reason: String| PlateError::Runtime {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_file() {
        return Err(err(
            "file not found (run scripts/setup.sh, or set onnxruntime_lib in the config)".into(),
        ));
    }
    let builder = ort::init_from(path).map_err(|e| err(e.to_string()))?;
    let env = builder
        .with_name("forecourt-agent")
        .with_telemetry(false)
        .build()
        .map_err(|e| err(e.to_string()))?;
    // A concurrent caller may have won the race; its environment is as good as ours.
    let _ = ENVIRONMENT.set(env);
    Ok(())
}

/// Opens a model on the process-wide ONNX Runtime (for tools and benchmarks that run a model
/// without the pipeline around it).
pub fn open_session(path: &Path, threads: usize) -> Result<ort::session::Session, PlateError> {
    let err = |reason: String| PlateError::Model {
        path: path.to_path_buf(),
        reason,
    };
    let Some(env) = ENVIRONMENT.get() else {
        return Err(err("ONNX Runtime is not loaded yet".into()));
    };
    if !path.is_file() {
        return Err(err("file not found (run scripts/setup.sh)".into()));
    }
    ort::session::Session::builder(env)
        .map_err(|e| err(e.to_string()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| err(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| err(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| err(e.to_string()))
}
