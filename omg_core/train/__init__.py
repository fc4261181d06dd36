"""Training objectives for OMG: Hungarian matching of queries to targets and the Mask2Former / OMG-Seg losses."""
