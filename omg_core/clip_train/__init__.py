"""Contrastive training of the tiny shapes-world CLIP that OMG's frozen backbone and text classifier start from."""
