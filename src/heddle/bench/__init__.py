"""`heddle bench`: load generation, CPU accounting and the crypto limit, Caliper-style."""
