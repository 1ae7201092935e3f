#[test]
fn probe() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475");
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "dat")).collect();
    names.sort();
    for p in names {
        let data = std::fs::read(&p).unwrap();
        let r = maskline_engine::sip::message::parse(&data);
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        match r {
            Ok(m) => println!("{name}: OK {}", String::from_utf8_lossy(&m.to_bytes()).lines().next().unwrap_or("")),
            Err(e) => println!("{name}: ERR {e} | 400: {}", maskline_engine::sip::message::bad_request_for(&data, &e.to_string()).is_some()),
        }
    }
}
