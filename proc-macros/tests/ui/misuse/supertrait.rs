#[monogusa::service]
pub trait Store: Clone {
    fn get(&self, key: String) -> i64;
}

fn main() {}
