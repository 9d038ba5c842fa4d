"""Compiled numerical building blocks shared by the kernels, the mixings and the engines:
small dense linear algebra, random variates, random-walk Metropolis-Hastings."""
