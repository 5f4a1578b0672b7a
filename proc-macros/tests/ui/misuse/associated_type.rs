#[monogusa::service]
pub trait Store {
    type Value;
    fn get(&self, key: String) -> i64;
}

fn main() {}
