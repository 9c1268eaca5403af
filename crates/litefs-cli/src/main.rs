fn main() {
    println!("litefs {}", env!("CARGO_PKG_VERSION"));
}
