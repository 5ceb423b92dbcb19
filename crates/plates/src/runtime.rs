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

/// Where ONNX Runtime runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    #[default]
    Cpu,
    /// The CUDA execution provider (GPU 0) when the loaded ONNX Runtime has it and a GPU is
    /// usable; otherwise the CPU, said once per model in the log.
    Cuda,
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            _ => Err(format!("unknown device {s:?} (cpu or cuda)")),
        }
    }
}

/// Opens a model on the process-wide ONNX Runtime, on the CPU (for tools and benchmarks that
/// run a model without the pipeline around it).
pub fn open_session(path: &Path, threads: usize) -> Result<ort::session::Session, PlateError> {
    open_session_on(path, threads, Device::Cpu)
}

/// Opens a model on `device`, falling back to the CPU (with a warning) when the device cannot
/// be used.
pub fn open_session_on(
    path: &Path,
    threads: usize,
    device: Device,
) -> Result<ort::session::Session, PlateError> {
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
    let builder = || -> Result<ort::session::builder::SessionBuilder, PlateError> {
        ort::session::Session::builder(env)
            .map_err(|e| err(e.to_string()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| err(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| err(e.to_string()))
    };
    if device == Device::Cuda {
        let cuda = ort::ep::CUDA::default().build().error_on_failure();
        let why = match builder()?.with_execution_providers([cuda]) {
            Ok(mut on_gpu) => match on_gpu.commit_from_file(path) {
                Ok(session) => return Ok(session),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        tracing::warn!(model = %path.display(), reason = %why, "CUDA execution provider not usable; running this model on the CPU");
    }
    builder()?
        .commit_from_file(path)
        .map_err(|e| err(e.to_string()))
}
