#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| forecourt_fuzz::ifsf_capture(data));
