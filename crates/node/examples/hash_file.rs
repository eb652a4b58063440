//! Hashes files with the node's hasher and prints throughput: `cargo run --release --example hash_file -- FILE...`
fn main() {
    for path in std::env::args().skip(1) {
        let start = std::time::Instant::now();
        let cid = shoal_node::index::hash_file(std::path::Path::new(&path)).expect("hash");
        let secs = start.elapsed().as_secs_f64();
        let size = std::fs::metadata(&path).expect("stat").len() as f64;
        println!("{cid}  {path}  {:.0} MB/s", size / secs / 1e6);
    }
}
