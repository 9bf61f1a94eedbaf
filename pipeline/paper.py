"""Numbers published in the paper (Liu et al., NeurIPS 2024), as given in the project's
reference notes, shown beside ours in the tables. Embedder: OpenAI text-embedding-ada-002."""

EMBEDDER = "OpenAI text-embedding-ada-002"

# LLM-ESR rows of Table 1 on Yelp: (HR@10, NDCG@10) per group.
TABLE1 = {
    "yelp": {
        "sasrec": {
            "overall": (0.6673, 0.4208),
            "tail_item": (0.1893, 0.0845),
            "head_item": (0.8080, 0.5199),
            "tail_user": (0.6685, 0.4229),
            "head_user": (0.6627, 0.4128),
        },
        "bert4rec": {
            "overall": (0.6623, 0.4222),
            "tail_item": (0.1227, 0.0500),
            "head_item": (0.8212, 0.5318),
            "tail_user": (0.6637, 0.4247),
            "head_user": (0.6571, 0.4127),
        },
        "gru4rec": {
            "overall": (0.5724, 0.3413),
            "tail_item": (0.0763, 0.0318),
            "head_item": (0.7184, 0.4324),
            "tail_user": (0.5782, 0.3456),
            "head_user": (0.5501, 0.3247),
        },
    },
}

# Table 2 (Yelp, SASRec): overall (HR@10, NDCG@10) per variant.
ABLATION = {
    "yelp": {
        "llmesr": (0.6673, 0.4208),
        "nocoview": (0.6320, 0.3816),
        "nosemview": (0.6468, 0.4038),
        "nosd": (0.6572, 0.4121),
        "noshare": (0.6595, 0.4158),
        "noca": (0.6644, 0.4160),
        "adapter1": (0.6108, 0.3713),
        "randinit": (0.6440, 0.3984),
    },
}
