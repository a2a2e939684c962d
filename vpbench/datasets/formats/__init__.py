"""Readers of the file formats datasets are distributed in, written for vpbench without their libraries:
hickle (HDF5, read with h5py), TFRecord files of ``tf.train.Example`` records, and pickled CIFAR batches."""
