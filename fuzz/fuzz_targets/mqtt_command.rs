#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| forecourt_fuzz::mqtt_command(data));
