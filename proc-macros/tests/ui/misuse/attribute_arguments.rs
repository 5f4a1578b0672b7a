#[monogusa::service(name = "x")]
pub trait Store {
    fn get(&self, key: String) -> i64;
}

fn main() {}
