//! Any bytes given to the GGUF header parser must give `Err` or a header whose tensors
//! all lie inside those bytes: never a panic, a hang or a huge allocation.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = tandem::gguf::parse_header(data) {
        for t in &header.tensors {
            let end = header.data_start + t.offset + t.n_bytes;
            assert!(end <= data.len() as u64, "tensor {} past the end", t.name);
        }
        // The typed accessors must not panic on whatever values parsed.
        let md = &header.metadata;
        for (key, _) in md.iter() {
            let _ = md.opt_u64(key);
            let _ = md.opt_f32(key);
            let _ = md.opt_str_array(key);
        }
    }
});
