#[monogusa::service(version = "2")]
pub trait Store {
    fn get(&self, key: String) -> i64;
}

#[monogusa::service(name = "")]
pub trait Empty {
    fn get(&self) -> i64;
}

fn main() {}
