//! Prints an ONNX model's inputs and outputs: `cargo run -p plates --example inspect_model -- MODEL...`

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let env = ort::init_from(root.join("vendor/onnxruntime/libonnxruntime.so"))?.build()?;
    for model in std::env::args().skip(1) {
        let session = ort::session::Session::builder(&env)?.commit_from_file(&model)?;
        println!("{model}");
        for i in session.inputs() {
            println!("  in  {} {:?}", i.name(), i.dtype());
        }
        for o in session.outputs() {
            println!("  out {} {:?}", o.name(), o.dtype());
        }
    }
    Ok(())
}
