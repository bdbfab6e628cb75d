"""The public site: pages and the partner portal that show what exists (registry) to those who may see it
(releases). It sits above both; neither imports it."""
