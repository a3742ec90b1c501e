# Named pretrained assets: ASSETS=gslm-hubert100 fetches the bundle into the
# cache (sp-assets; docs/assets.md) as a stage, and sets what it implies: the
# encoder, its checkpoint and layer, the k-means, the uLM, its dict and the
# learning rate that suits GSLM's big uLM. These settings replace the defaults
# and the task's; a variable given on the command line wins, and its file is
# not fetched. ASSETS_MIRROR=URL takes the same paths from another host.
#
# Make reads variables while it parses, before any stage runs, so the stage
# writes a makefile fragment that is included here: GNU Make makes a missing or
# out-of-date included makefile first and then reads everything again, also
# under -n, so `make -n` fetches the bundle and prints the fetched paths.
ASSETS ?=
ASSETS_MIRROR ?=
ifneq ($(strip $(ASSETS)),)
# Files the run would not read are not fetched: HuBERT and the k-means when
# UNITS= skips the audio stages, and a file whose variable the command line sets.
ASSETS_SKIP := $(sort $(if $(UNITS),hubert kmeans) \
  $(foreach v,HUBERT KMEANS ULM DICT,$(if $(filter command line,$(origin $v)),$(shell echo $v | tr A-Z a-z))))
ASSETS_MK := $(EXP)/assets/$(subst $() ,+,$(strip $(ASSETS) $(addprefix no-,$(ASSETS_SKIP)))).mk
include $(ASSETS_MK)
# Until the fragment is read, the variables it sets hold their defaults: this
# first pass records no variable (mk/experiment.mk), the pass after the fetch does.
ASSETS_PENDING := $(if $(wildcard $(ASSETS_MK)),,pending)
# A fragment that names files no longer there (a cleared cache) is written again.
$(ASSETS_MK): $(DEPS.assets) $(subst :, ,$(SPEECHPROMPT_REGISTRY)) \
              $(if $(filter-out $(wildcard $(ASSETS_FILES)),$(ASSETS_FILES)),FORCE) | $(STAMP)
	$(strip $(SP)assets get --format make $(ASSETS) $(addprefix --skip ,$(ASSETS_SKIP)) $(ASSETS_MIRROR:%=--mirror %) -o $@)
ifneq ($(and $(ASSETS_UNITS_ONLY),$(if $(UNITS),,audio)),)
$(error ASSETS=$(ASSETS): $(ASSETS_UNITS_ONLY))
endif
endif
