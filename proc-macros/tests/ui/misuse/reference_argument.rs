#[monogusa::service]
pub trait Store {
    fn get(&self, key: &String, named: &'a str) -> i64;
}

fn main() {}
