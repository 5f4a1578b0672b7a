#[monogusa::service]
pub trait Store {
    fn make(key: String) -> i64;
}

fn main() {}
