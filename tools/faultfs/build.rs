//! Compiles the shim (`src/faultfs.c`) into a shared library beside the crate's other build
//! outputs, and tells the crate where it is (`FAULTFS_SO`).
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "src/faultfs.c";
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let library = out.join("libfaultfs.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
        ])
        .arg(&library)
        .arg(source)
        .args(["-ldl", "-lpthread"])
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(status.success(), "`{cc}` failed to build {source}");
    println!("cargo:rustc-env=FAULTFS_SO={}", library.display());
}
