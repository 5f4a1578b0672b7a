#[monogusa::service]
pub trait Store {
    fn get(&self, key: &str) -> i64;
}

fn main() {}
