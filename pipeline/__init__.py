"""LLM-ESR as a pipeline of small stages; each module is one stage with a `main(argv)`."""
