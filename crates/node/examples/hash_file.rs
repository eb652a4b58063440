//! Hashes files the ways the node can and prints throughput:
//! `cargo run --release --example hash_file -- FILE...`
fn main() {
    for path in std::env::args().skip(1) {
        let size = std::fs::metadata(&path).expect("stat").len();
        let start = std::time::Instant::now();
        let cid = shoal_node::index::hash_file(std::path::Path::new(&path)).expect("hash");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{cid}  {path}  content id only: {:.0} MB/s",
            size as f64 / secs / 1e6
        );
        let start = std::time::Instant::now();
        let file = std::fs::File::open(&path).expect("open");
        let (cid2, outboard) = shoal_node::pieces::outboard_of(file, size).expect("outboard");
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(cid, cid2);
        println!(
            "{cid2}  {path}  with outboard ({} bytes): {:.0} MB/s",
            outboard.len(),
            size as f64 / secs / 1e6
        );
    }
}
