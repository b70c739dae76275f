# The centre's linkage database, for `kizuna consent` and `kizuna index link` run from an admin's
# shell: the same file as kizuna-linkage.service and the viewer (/etc/kizuna/viewer.yaml.example).
export KIZUNA_INDEX_DATABASE_URL='sqlite:///var/lib/kizuna/store/linkage.sqlite?mode=rwc'
