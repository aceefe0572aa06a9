"""`lbgen import` / `lbgen audit`: existing per-hop configs in, a spec (and findings) out."""
