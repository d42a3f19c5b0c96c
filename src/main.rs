fn main() {
    println!("seqnet");
}
