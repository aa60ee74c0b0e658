"""The architecture study's pieces: its computations in every style, and the roofline."""
