"""`python -m interp ...` = the `interp` command; also what `accelerate launch -m interp ...` runs on every rank."""

from interp.cli import main

if __name__ == "__main__":
    main()
