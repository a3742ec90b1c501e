# TABLE: your own data as a CSV/TSV, DATA=FILE (one table; a `split` column, or
# TABLE_SPLIT_COLUMN, else a sha1 hash of the file name splits 80/10/10) or
# DATA=DIR (with {train,valid,test}.{csv,tsv}). Paths are relative to the table.
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := table
TABLE_PATH_COLUMN ?= path
# Several columns make a multi-slot label (`action object location`).
TABLE_LABEL_COLUMNS ?= label
TABLE_ID_COLUMN ?=
TABLE_SPLIT_COLUMN ?=
# --any-rate, the recipe's default, and the table's columns.
MANIFEST_OPTS ?= $(strip --any-rate --path-column $(TABLE_PATH_COLUMN) \
                 $(addprefix --label-column ,$(TABLE_LABEL_COLUMNS)) \
                 $(if $(TABLE_ID_COLUMN),--id-column $(TABLE_ID_COLUMN)) \
                 $(if $(TABLE_SPLIT_COLUMN),--split-column $(TABLE_SPLIT_COLUMN)))
